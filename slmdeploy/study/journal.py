"""The study journal: an append-only JSON-lines log that is the study's source of truth.

Every state change is one line, written and fsync'ed before the work it announces
starts (``start``) or after the work it records has finished (``end``), so a runner
killed at any instant leaves a journal that says exactly which jobs are finished. A torn
last line (killed mid-write) is cut off when the journal is opened again.

Events (``event`` field):

- ``study``: the resolved study and plan size, once per ``study run``/``--resume``;
- ``export``: a (model, target) exported (``artifact``) or failed (``error``);
- ``device``: a device found offline at start or quarantined (``state``, ``reason``);
- ``start``: attempt ``attempt`` of job ``job`` begins in run directory ``run_dir``;
- ``end``: that attempt's ``status`` (complete | incomplete | failed, or interrupted when a
  resumed study found it open) and ``error``;
- ``not_run``: a job that will not run in this invocation, and why.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmdeploy.study.spec import StudyError

JOURNAL = "journal.jsonl"


@dataclass
class JobState:
    """What the journal says of one job."""

    started: int = 0  # the highest attempt number started (numbers are never reused)
    status: str | None = None  # the last ended attempt's: complete | incomplete | failed | interrupted
    run_dir: str | None = None  # the last ended attempt's run directory (relative to the study dir)
    open_attempt: tuple[int, str] | None = None  # (attempt, run_dir) started and never ended
    error: str | None = None
    not_run: str | None = None  # why the latest invocation did not run it

    @property
    def complete(self) -> bool:
        return self.status == "complete"


@dataclass
class JournalState:
    jobs: dict[str, JobState] = field(default_factory=dict)
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)  # export key -> last export event
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # spec -> last device event
    studies: list[dict[str, Any]] = field(default_factory=list)  # every ``study`` event (one per invocation)
    torn: int = 0

    def job(self, job_id: str) -> JobState:
        return self.jobs.setdefault(job_id, JobState())


def replay(events: list[dict[str, Any]]) -> JournalState:
    state = JournalState()
    for e in events:
        kind = e.get("event")
        if kind == "study":
            state.studies.append(e)
        elif kind == "export":
            state.exports[e["key"]] = e
        elif kind == "device":
            state.devices[e["device"]] = e
        elif kind == "start":
            js = state.job(e["job"])
            js.started = max(js.started, e["attempt"])
            js.open_attempt = (e["attempt"], e["run_dir"])
            js.not_run = None
        elif kind == "end":
            js = state.job(e["job"])
            js.status, js.run_dir, js.error = e["status"], e["run_dir"], e.get("error")
            js.open_attempt = None
        elif kind == "not_run":
            state.job(e["job"]).not_run = e.get("reason")
    return state


def read_events(path: Path) -> tuple[list[dict[str, Any]], int]:
    """(events, torn lines); a line that is not a JSON object is torn (only the last can be)."""
    events, torn = [], 0
    if not path.is_file():
        return events, torn
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                event = json.loads(raw)
            except ValueError:
                torn += 1
                continue
            if isinstance(event, dict) and "event" in event:
                events.append(event)
            else:
                torn += 1
    return events, torn


class Journal:
    """Appends events durably; one writer per study directory (the runner holds a lock)."""

    def __init__(self, study_dir: Path) -> None:
        self.path = Path(study_dir) / JOURNAL
        self._lock = threading.Lock()
        self._repair()
        self._fh = open(self.path, "ab", buffering=0)

    def _repair(self) -> None:
        """Cut a torn last line (a runner killed mid-write), so the next event starts a fresh line."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())

    def state(self) -> JournalState:
        events, torn = read_events(self.path)
        state = replay(events)
        state.torn = torn
        return state

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "t": round(time.time(), 3), **fields}, default=str,
                          separators=(",", ":")) + "\n"
        with self._lock:
            self._fh.write(line.encode())
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def load_state(study_dir: Path) -> JournalState:
    """The journal of a study directory, read only (for ``study status`` and reports)."""
    path = Path(study_dir) / JOURNAL
    if not path.is_file():
        raise StudyError(f"{study_dir} is not a study directory: it has no {JOURNAL}. "
                         "Start one with `slmdeploy study run FILE --dir DIR`.")
    events, torn = read_events(path)
    state = replay(events)
    state.torn = torn
    return state
