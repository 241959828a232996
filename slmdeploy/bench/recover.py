"""Orphaned runs: settle the run directories of benches that died before they could.

A bench killed outright (SIGKILL, the out-of-memory killer, a crash, a closed laptop) leaves
run.json saying ``running`` and often a harness still measuring on the device, its trace in
the device's run directory. Such a run keeps a ``run.lock`` that no live process holds
(``rundir``). ``recover_runs`` finds those, stops their harness, pulls what it measured and
marks the run ``complete`` (the harness had finished), ``incomplete`` (something was
measured) or ``failed``; run.json's ``recovery`` says when, by whom and what was pulled.

A run whose device cannot be reached now (another host's run, a phone unplugged, a device
busy with another bench, or a recovery meant for another device) is marked from what is
here, with ``recovery.status = "pending"`` and its ``run.lock`` kept: a later recovery that
reaches the device pulls the rest. ``bench`` recovers its runs directory for its own device
before every run, ``slmdeploy report`` the folders it reads; anyone else (a study runner) can
call ``recover_runs(runs_dir, device)``.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from slmdeploy.analysis.ops import ETDUMP_FILE, LITERT_PROFILE_FILE
from slmdeploy.analysis.records import RUN_FILE, TRACE_FILE
from slmdeploy.bench.rundir import LOCK_FILE, PULLED, RunDir, claim, now_iso, unfinished_status, unsettled
from slmdeploy.devices import Device, open_device
from slmdeploy.devices.clean import kill_run
from slmdeploy.devices.deploy import pull_into
from slmdeploy.devices.lock import device_lock
from slmdeploy.devices.spec import identity
from slmdeploy.errors import DeviceError, SlmdeployError
from slmdeploy.harness.trace import read_trace

PROFILES = (ETDUMP_FILE, LITERT_PROFILE_FILE)


@dataclass
class Recovered:
    """One orphaned run, settled (or pending: ``pending`` says why its device was not reached)."""

    run_dir: Path
    status: str  # complete | incomplete | failed
    pulled: list[str] = field(default_factory=list)
    pending: str | None = None

    def describe(self) -> str:
        """One line for a person: what became of the run, and what is still to come."""
        if self.pending:
            return (f"orphaned run {self.run_dir.name} (its bench died) marked {self.status} for now: {self.pending}; "
                    "a later bench there or report pulls what its device kept")
        what = f"pulled {', '.join(self.pulled)}" if self.pulled else "nothing left on the device"
        return f"recovered orphaned run {self.run_dir.name}: {self.status} ({what})"


def orphans(runs_dir: str | Path) -> list[Path]:
    """Run directories in ``runs_dir`` (or ``runs_dir`` itself) whose ``run.lock`` no live bench holds.

    Cheap on a large folder: only directories that still have a ``run.lock`` are looked at.
    """
    found = []
    for run_dir in _candidates(Path(runs_dir)):
        owner = claim(run_dir)
        if owner is not None:
            owner.close()
            found.append(run_dir)
    return found


def _candidates(root: Path) -> list[Path]:
    """``root`` if it is a run directory with a ``run.lock``, else its subdirectories that have one."""
    return [root] if (root / LOCK_FILE).exists() else sorted(p.parent for p in root.glob(f"*/{LOCK_FILE}"))


def recover_runs(runs_dir: str | Path, device: str | Device | None = None, *, device_locked: bool = False,
                 lock_timeout: float = 5.0, by: str = "recover", progress: bool = False) -> list[Recovered]:
    """Settle the orphaned runs in ``runs_dir``; returns what was done to each.

    ``device`` (a spec or an open device) limits what is reached to that device: orphans of
    other devices are marked pending. Without it, each orphan's own device is opened, if the
    run was benched on this host. A device's lock is taken (waiting ``lock_timeout`` s; a busy
    device leaves its orphans pending) unless ``device_locked`` says the caller holds it.
    """
    claimed = _claim(Path(runs_dir))
    try:
        groups: dict[tuple[str, str], list[RunDir]] = {}  # one device (on one host) reached once
        for rd in claimed:
            groups.setdefault((str(rd.meta.get("host")), identity(str(rd.meta.get("device") or ""))), []).append(rd)
        results = []
        for (_, key), members in groups.items():
            with _reach(key, members[0].meta, device, device_locked, lock_timeout) as (dev, why):
                results += [_settle(rd, dev, why, by, progress) for rd in members]
        return results
    finally:
        for rd in claimed:
            rd.release()  # its run.lock goes with it unless it is still pending


def _claim(root: Path) -> list[RunDir]:
    """Each orphan that needs settling, its lock held; a stale lock file of a settled run is removed."""
    claimed = []
    for run_dir in _candidates(root):
        owner = claim(run_dir)
        if owner is None:  # a live bench holds it (or another recovery does)
            continue
        try:
            meta = json.loads((run_dir / RUN_FILE).read_text())
        except (OSError, ValueError):
            meta = None
        if not isinstance(meta, dict):  # no readable run.json: nothing to settle it against; leave it be
            owner.close()
            continue
        rd = RunDir(path=run_dir, meta=meta, owner=owner)
        if unsettled(meta):
            claimed.append(rd)
        else:
            rd.release()
    return claimed


@contextlib.contextmanager
def _reach(key: str, meta: dict[str, Any], device: str | Device | None, device_locked: bool,
           lock_timeout: float) -> Iterator[tuple[Device | None, str | None]]:
    """(the device, None) under its lock, or (None, why it is not reached)."""
    spec = str(meta.get("device") or "")
    if device is not None:
        given = device if isinstance(device, str) else device.spec
        if identity(given) != key:
            yield None, f"its device {spec} was not reached (this recovery was for {given})"
            return
        target = device
    elif meta.get("host") not in (None, socket.gethostname()):
        yield None, f"it was benched on host {meta.get('host')}; recover it there"
        return
    else:
        target = spec
    try:
        dev = open_device(target)
    except SlmdeployError as err:
        yield None, f"its device {spec} could not be reached: {err}"
        return
    try:
        with contextlib.ExitStack() as held:
            if not device_locked:
                try:
                    held.enter_context(device_lock(dev.spec, timeout=lock_timeout))
                except DeviceError as err:  # busy: a bench runs there now; the trace waits for a later look
                    yield None, str(err)
                    return
            yield dev, None
    finally:
        if dev is not target:
            dev.close()


def _settle(rd: RunDir, dev: Device | None, why: str | None, by: str, progress: bool) -> Recovered:
    meta = rd.meta
    pulled: list[str] = []
    remote = meta.get("device_run_dir")
    if dev is not None and isinstance(remote, str) and remote:
        try:
            kill_run(dev, remote)
            pulled = pull_into(dev, remote, rd.path, PULLED + PROFILES, progress=progress)
        except SlmdeployError as err:
            why = f"its device {dev.spec} failed during recovery: {err}"
    trace = rd.path / TRACE_FILE
    status = "complete" if trace.is_file() and read_trace(trace).complete else unfinished_status(rd.path)
    fields: dict[str, Any] = {
        "status": status,
        "recovery": {"status": "pending" if why else "done", "at": now_iso(), "by": by, "pulled": pulled,
                     **({"note": why} if why else {})},
    }
    if meta.get("status") == "running":  # the bench died without a word: say so
        owner = f"pid {meta.get('pid', '?')} on {meta.get('host', '?')}"
        fields["interrupted"] = f"the bench process ({owner}) ended during the run"
        fields["finished_at"] = now_iso()
        if status != "complete":
            fields["error"] = f"{fields['interrupted']}; what it measured was recovered by {by}"
    rd.update(**fields)
    _index(rd, meta.get("db"))
    return Recovered(rd.path, status, pulled, why)


def _index(rd: RunDir, db: Any) -> None:
    """Put the settled run in the results database its bench was writing to (the run dir is the record)."""
    if not isinstance(db, str) or not db:
        return
    from slmdeploy.analysis.store import store_run

    with contextlib.suppress(SlmdeployError, OSError, ValueError):
        store_run(rd.path, Path(db))
