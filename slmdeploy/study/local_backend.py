"""The local backend: this host drives every device of the study over its own links.

One connection per device, opened when the device is probed and reused by every job on
it (an ssh or adb-direct handshake per run would cost more host CPU than the run); a
device that stopped answering is reopened before its next job. Jobs are plain
``slmdeploy.bench`` calls into the study's ``runs/`` and database.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from slmdeploy.analysis.records import RUN_FILE
from slmdeploy.devices import Device, open_device, parse
from slmdeploy.errors import SlmdeployError
from slmdeploy.export.artifact import Artifact
from slmdeploy.study.devices import adb_devices
from slmdeploy.study.directory import StudyDir
from slmdeploy.study.plan import Job
from slmdeploy.study.runner import PROBE_TIMEOUT_S, Outcome
from slmdeploy.study.spec import DeviceEntry, Study

ALIVE_TIMEOUT_S = 15.0


def with_deadline(fn: Callable[[], Any], timeout: float) -> Any:
    """``fn()``, or TimeoutError after ``timeout`` s (the call is left to finish in a daemon thread)."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller
            box["error"] = err

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no answer in {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def is_alive(device: Device, patience_s: float) -> bool:
    """Does the device still answer a trivial command (after up to ``patience_s`` to come back)?"""
    try:
        return bool(with_deadline(lambda: device.shell(["true"], timeout=ALIVE_TIMEOUT_S).ok,
                                  patience_s + ALIVE_TIMEOUT_S))
    except (SlmdeployError, TimeoutError, OSError):
        return False


def connect(spec: str, patience_s: float) -> Device:
    """A device connection that waits up to ``patience_s`` for a phone that dropped off to come back."""
    options = {"reconnect_timeout": patience_s} if parse(spec).transport in ("adb", "adb-direct") else {}
    return open_device(spec, **options)


def probe_devices(specs: list[str], patience_s: float = 30.0) -> tuple[dict[str, Device], dict[str, str]]:
    """Open every device and ask it who it is, all at once, each within a deadline.

    Returns (spec -> open device, spec -> why it is offline).
    """
    results: dict[str, Any] = {}

    def one(spec: str) -> None:
        try:
            dev = with_deadline(lambda: connect(spec, patience_s), PROBE_TIMEOUT_S)
            with_deadline(dev.info, PROBE_TIMEOUT_S)
            results[spec] = dev
        except (SlmdeployError, TimeoutError, OSError) as err:
            results[spec] = str(err) if isinstance(err, SlmdeployError) else f"{type(err).__name__}: {err}"

    threads = [threading.Thread(target=one, args=(spec,), daemon=True) for spec in specs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * PROBE_TIMEOUT_S + 5)
    opened = {s: r for s, r in results.items() if not isinstance(r, str)}
    offline = {s: results.get(s, "no answer") for s in specs if s not in opened}
    return opened, offline


def run_status(run_dir) -> str:
    """The status a finished bench left in run.json (``failed`` when it left none)."""
    try:
        return json.loads((run_dir / RUN_FILE).read_text()).get("status") or "failed"
    except (OSError, ValueError):
        return "failed"


def bench_job(study: Study, job: Job, artifact: Artifact, device: Device | str, runs_dir, run_name: str,
              meta: dict[str, Any]) -> Outcome:
    """One attempt of ``job``: a bench into ``runs_dir/run_name``, its failure told as an ``Outcome``.

    The run is not stored in a database here: the study indexes its runs/ in batches.
    """
    from slmdeploy.bench import bench
    from slmdeploy.bench.workload import Workload

    r, c = study.run, study.cooldown
    workload = Workload(prompt_tokens=job.workload.prompt, gen_tokens=job.workload.gen, warmup=r.warmup,
                        runs=r.runs, threads=job.workload.threads, telemetry_interval_ms=r.telemetry_ms)
    try:
        bench(artifact, device, workload=workload, harness=r.harness, runs_dir=runs_dir, timeout=r.timeout_s,
              profile=r.profile, progress=False, cooldown_c=c.below_c, cooldown_timeout=c.timeout_s,
              run_name=run_name, meta=meta, store=False)
    except SlmdeployError as err:
        return Outcome(run_status(runs_dir / run_name), str(err))
    return Outcome("complete")


class LocalBackend:
    def __init__(self, study: Study, sd: StudyDir) -> None:
        self.study, self.sd = study, sd
        self._open: dict[str, Device] = {}
        self._lock = threading.Lock()

    def discover(self) -> list[str]:
        return adb_devices()

    def probe(self, devices: list[DeviceEntry]) -> dict[str, str]:
        opened, offline = probe_devices([d.spec for d in devices], self.study.devices.reconnect_s)
        self._open.update(opened)
        return offline

    def prepare(self, artifacts: list[Artifact]) -> None:
        for art in artifacts:  # hashed once here; every bench after finds the hash memoised
            art.verify()

    def _connect(self, spec: str) -> Device:
        return connect(spec, self.study.devices.reconnect_s)

    def _device(self, spec: str) -> Device:
        with self._lock:
            if spec not in self._open:
                self._open[spec] = self._connect(spec)
            return self._open[spec]

    def _drop(self, spec: str) -> None:
        with self._lock:
            dev = self._open.pop(spec, None)
        if dev is not None:
            try:
                dev.close()
            except Exception:  # a dead link may fail to close; it is gone either way
                pass

    def run_job(self, job: Job, artifact: Artifact, run_name: str, meta: dict[str, Any]) -> Outcome:
        try:
            device = self._device(job.device)
        except SlmdeployError as err:
            return Outcome("failed", str(err), device_lost=True)
        outcome = bench_job(self.study, job, artifact, device, self.sd.runs, run_name, meta)
        if outcome.status != "complete" and not is_alive(device, self.study.devices.reconnect_s):
            outcome.device_lost = True
            self._drop(job.device)
        return outcome

    def close(self) -> None:
        for spec in list(self._open):
            self._drop(spec)
