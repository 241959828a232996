"""Fault injection: what goes wrong with real phones, on demand.

A ``FaultPlan`` is given at start; the running phone's methods change it at run
time (``EmulatedPhone.drop_next_push_after`` ...). Drops are one-shot by default,
so a retry after the fault succeeds the way it would after a flaky cable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class FaultPlan:
    """Faults to inject; ``None`` means off."""

    drop_push_after_bytes: int | None = None  # drop the transport once a push has received this much
    drop_shell_after_s: float | None = None  # kill the command and drop the transport after this long
    drop_shell_matching: str | None = None  # ... only a command containing this text (else the next one)
    one_shot: bool = True  # the two drops disarm after firing once
    link_bytes_per_s: float | None = None  # throttle each direction of every connection
    data_quota_bytes: int | None = None  # /data + /sdcard capacity: ENOSPC beyond it
    reboot_downtime_s: float = 1.0  # how long a rebooting phone refuses connections


class Faults:
    """Thread-safe live view of a FaultPlan."""

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._lock = threading.Lock()
        self._plan = plan or FaultPlan()

    def update(self, **changes: object) -> None:
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self._plan, name):
                    raise AttributeError(f"no fault named {name!r}")
                setattr(self._plan, name, value)

    def get(self, name: str) -> object:
        with self._lock:
            return getattr(self._plan, name)

    def _take(self, name: str) -> float | None:
        with self._lock:
            value = getattr(self._plan, name)
            if value is not None and self._plan.one_shot:
                setattr(self._plan, name, None)
            return value

    def take_push_drop(self) -> int | None:
        """Bytes after which the current push drops the link (consumes a one-shot fault)."""
        value = self._take("drop_push_after_bytes")
        return None if value is None else int(value)

    def take_shell_drop(self, command: str = "") -> float | None:
        """Seconds after which ``command`` is killed and the link dropped (None: not this command)."""
        with self._lock:
            matching = self._plan.drop_shell_matching
        if matching and matching not in command:
            return None  # armed for another command: wait for it
        return self._take("drop_shell_after_s")

    @property
    def data_quota_bytes(self) -> int | None:
        with self._lock:
            return self._plan.data_quota_bytes

    @property
    def reboot_downtime_s(self) -> float:
        with self._lock:
            return self._plan.reboot_downtime_s

    @property
    def link_bytes_per_s(self) -> float | None:
        with self._lock:
            return self._plan.link_bytes_per_s


class LinkThrottle:
    """Paces one direction of a connection to the plan's bytes per second (read live)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._next = 0.0

    def pace(self, nbytes: int) -> None:
        rate = self.faults.link_bytes_per_s
        now = time.monotonic()
        if not rate or rate <= 0:
            self._next = now
            return
        start = max(now, self._next)
        self._next = start + nbytes / rate
        delay = self._next - now
        if delay > 0:
            time.sleep(delay)
