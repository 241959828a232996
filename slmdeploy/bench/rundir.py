"""The run directory on this host: everything one benchmark run produced, and its status.

``run.json`` is rewritten at every status change (running -> complete | incomplete |
failed), atomically, so an interrupted run is still a readable record.

While a bench works on a run it holds an ``flock`` on ``run.lock`` in the directory; the
kernel drops it when the process dies, however it dies. The file is removed once the run is
settled, so a ``run.lock`` that nobody holds marks an orphan: a run whose bench was killed
(SIGKILL, out of memory, a crash) and which ``bench.recover`` settles later.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from slmdeploy._paths import check_creatable
from slmdeploy.analysis.records import RUN_FILE, TRACE_FILE
from slmdeploy.errors import OutputDirError
from slmdeploy.harness.trace import read_trace

LOCK_FILE = "run.lock"
PULLED = (TRACE_FILE, "harness.stdout", "harness.stderr")  # what the harness leaves in its device run dir
MEASUREMENTS = ("load", "iteration")  # trace events that are measurements (a header alone is not)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_runs_dir(runs_dir: Path) -> None:
    """Fail before any work (and without creating anything) when run directories cannot be made in ``runs_dir``."""
    check_creatable(runs_dir, "runs directory", "Pick another --runs-dir or fix its permissions.")


def _unwritable(runs_dir: Path, err: OSError) -> OutputDirError:
    return OutputDirError(f"cannot write runs to {runs_dir}: {err.strerror or err}. "
                          "Pick another --runs-dir or fix its permissions.")


def claim(run_dir: Path) -> IO[str] | None:
    """The run's lock, held (an open file; closing it lets go), or None if a live process holds it."""
    try:
        fh = open(run_dir / LOCK_FILE, "a+")
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held
        fh.close()
        return None
    return fh


def unsettled(meta: dict[str, Any]) -> bool:
    """Whether a run still needs its bench (or a recovery): running, or measurements left on the device."""
    recovery = meta.get("recovery")
    return meta.get("status") == "running" or (isinstance(recovery, dict) and recovery.get("status") == "pending")


def measured(run_dir: Path) -> bool:
    """Whether any attempt's trace holds a measurement: only then is a run that did not finish ``incomplete``."""
    for path in (run_dir / TRACE_FILE, *sorted(run_dir.glob("trace.attempt*.jsonl"))):
        if path.is_file() and any(read_trace(path).of(kind) for kind in MEASUREMENTS):
            return True
    return False


def unfinished_status(run_dir: Path) -> str:
    """The status of a run that did not complete: ``incomplete`` when something was measured, else ``failed``."""
    return "incomplete" if measured(run_dir) else "failed"


@dataclass
class RunDir:
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    owner: IO[str] | None = field(default=None, repr=False)  # run.lock, held while this process works on the run
    unpulled: bool = False  # a harness ran on the device and its files are not here yet

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, artifact_name: str, device_spec: str, name: str | None = None) -> "RunDir":
        """A new run directory: ``name`` if given (a study names its runs after its jobs), else time-stamped."""
        if name is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            name = f"{stamp}-{_slug(artifact_name)}-{_slug(device_spec)}-{secrets.token_hex(2)}"
        elif not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
            raise OutputDirError(f"run name {name!r} is not a plain directory name (letters, digits, _ . -).")
        path = Path(runs_dir) / name
        try:
            path.mkdir(parents=True)
            owner = claim(path)
            if owner is None:
                raise OSError(f"cannot lock {path / LOCK_FILE}")
            owner.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            owner.flush()
        except OSError as err:
            raise _unwritable(runs_dir, err) from None
        return cls(path=path, owner=owner)

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        tmp = self.path / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        os.replace(tmp, self.path / RUN_FILE)

    def write_json(self, name: str, data: Any) -> None:
        (self.path / name).write_text(json.dumps(data, indent=2, default=str) + "\n")

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Let go of the run; its lock file goes too once it is settled (else it marks an orphan to recover)."""
        if self.owner is None:
            return
        if not unsettled(self.meta):
            (self.path / LOCK_FILE).unlink(missing_ok=True)
        self.owner.close()
        self.owner = None
