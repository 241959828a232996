"""The trace: JSON lines, one event per line, flushed as written.

A harness that dies mid-run leaves every completed event readable; only a trace that
ends with a ``footer`` event is complete. The reader tolerates a torn last line.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator


class TraceWriter:
    """Appends events; safe to share with a telemetry thread."""

    def __init__(self, path: str | Path) -> None:
        self._fh = open(path, "w", buffering=1)
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


@dataclass
class Trace:
    events: list[dict[str, Any]]
    torn_lines: int = 0
    path: Path | None = None
    _by_type: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    def of(self, kind: str) -> list[dict[str, Any]]:
        if not self._by_type:
            for event in self.events:
                self._by_type.setdefault(event.get("type", ""), []).append(event)
        return self._by_type.get(kind, [])

    @property
    def header(self) -> dict[str, Any]:
        found = self.of("header")
        return found[0] if found else {}

    @property
    def footer(self) -> dict[str, Any] | None:
        found = self.of("footer")
        return found[-1] if found else None

    @property
    def complete(self) -> bool:
        return self.footer is not None and self.footer.get("status") == "complete"

    @property
    def error(self) -> str | None:
        errors = self.of("error")
        return errors[-1].get("message") if errors else None

    def iterations(self, include_warmup: bool = False) -> Iterator[dict[str, Any]]:
        for event in self.of("iteration"):
            if include_warmup or not event.get("warmup"):
                yield event


def read_trace(path: str | Path) -> Trace:
    events, torn = [], 0
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                events.append(json.loads(raw))
            except (json.JSONDecodeError, UnicodeDecodeError):
                torn += 1
    return Trace(events=events, torn_lines=torn, path=Path(path))
