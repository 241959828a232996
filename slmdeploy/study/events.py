"""What a running study tells its user: a live table per device, or JSON lines for machines.

The runner emits plain events (``emit(kind, **fields)``); a sink renders them. ``LiveView``
keeps one row per device (current job, done / failed / remaining, ETA from the durations
measured so far) on stderr; ``JsonLines`` prints each event as one JSON object on stdout
(``study run --json``), flushed at once so a CI log or a dashboard can follow.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol


class Sink(Protocol):
    def emit(self, kind: str, **fields: Any) -> None: ...

    def close(self) -> None: ...


class Silent:
    def emit(self, kind: str, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


class JsonLines:
    """One JSON object per event on stdout: ``{"event": "job_end", "t": ..., ...}``."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def emit(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"event": kind, "t": round(time.time(), 3), **fields}, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass


@dataclass
class DeviceRow:
    spec: str
    total: int = 0
    done: int = 0
    failed: int = 0
    not_run: int = 0
    state: str = "waiting"
    current: str = ""
    started: float | None = None
    durations: list[float] = field(default_factory=list)
    estimate_s: float = 0.0  # the plan's estimate per job, until a job was measured

    @property
    def remaining(self) -> int:
        return max(self.total - self.done - self.failed - self.not_run, 0)

    def eta_s(self) -> float:
        per_job = sum(self.durations) / len(self.durations) if self.durations else self.estimate_s
        elapsed = time.monotonic() - self.started if self.started is not None else 0.0
        return max(self.remaining * per_job - min(elapsed, per_job), 0.0)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LiveView:
    """A rich Live table on stderr, redrawn as events arrive."""

    def __init__(self, title: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.title = title
        self.rows: dict[str, DeviceRow] = {}
        self.phase = "starting"
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4, transient=False)
        self._live.start()

    def _render(self):
        from rich.table import Table

        table = Table(title=f"study {self.title}: {self.phase}", header_style="bold", title_justify="left")
        for col in ("device", "state", "current job", "done", "failed", "not run", "remaining", "ETA"):
            table.add_column(col, justify="right" if col in ("done", "failed", "not run", "remaining", "ETA") else "left")
        for row in self.rows.values():
            eta = "-" if row.state in ("offline", "quarantined") or not row.remaining else _duration(row.eta_s())
            table.add_row(row.spec, row.state, row.current, str(row.done), str(row.failed), str(row.not_run),
                          str(row.remaining), eta)
        return table

    def emit(self, kind: str, **f: Any) -> None:
        with self._lock:
            row = self.rows.get(f.get("device", ""))
            if kind == "plan":
                for d in f["devices"]:
                    self.rows[d["spec"]] = DeviceRow(d["spec"], total=d["jobs"], estimate_s=d["estimate_s"])
            elif kind == "export_start":
                self.phase = f"exporting {f['model']} -> {f['target']} ({f['index']}/{f['total']})"
            elif kind == "runs_start":
                self.phase = "running"
            elif kind == "device_offline" and row:
                row.state, row.current = "offline", f.get("reason", "")[:60]
            elif kind == "quarantine" and row:
                row.state, row.current = "quarantined", f.get("reason", "")[:60]
            elif kind == "job_start" and row:
                row.state, row.current, row.started = "running", f["name"], time.monotonic()
            elif kind == "job_end" and row:
                row.started = None
                row.state, row.current = "idle", ""
                if f["status"] == "complete":
                    row.done += 1
                    row.durations.append(f.get("wall_s") or 0.0)
                elif f.get("final", True):
                    row.failed += 1
            elif kind == "not_run" and row:
                row.not_run += 1
            elif kind == "study_end":
                self.phase = "finished"
            self._live.update(self._render())

    def close(self) -> None:
        self._live.stop()
        self._live.console.line()
