"""The phone's process table: every command it started, for killing and CPU accounting.

Commands run in their own session (sid == pid of the shell), so a command and all
its children can be found in /proc by session id even after the shell exits, and
killed together (stream closed, reboot) or charged for CPU time (heating model).
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid_dir: Path) -> tuple[int, float] | None:
    """(session id, CPU seconds) of one /proc/PID entry, or None if it is gone."""
    try:
        raw = (pid_dir / "stat").read_text()
        fields = raw[raw.rfind(")") + 2:].split()
        if fields[0] in ("Z", "X"):
            return None  # a zombie waiting for its reaper has finished its work
        # fields[0] is state (field 3); session is field 6, utime/stime are 14/15.
        return int(fields[3]), (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):  # gone, or vanished mid-read
        return None


class ProcessTable:
    """Sessions started by the phone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: set[int] = set()
        self._last_cpu: dict[int, float] = {}

    def add(self, pid: int) -> None:
        with self._lock:
            self._sessions.add(pid)

    def scan(self) -> dict[int, tuple[int, float]]:
        """pid -> (session, CPU seconds) for live processes in our sessions; prunes dead sessions."""
        with self._lock:
            sessions = set(self._sessions)
        if not sessions:
            return {}
        found: dict[int, tuple[int, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            info = _stat(entry)
            if info is not None and info[0] in sessions:
                found[int(entry.name)] = info
        alive = {sid for sid, _cpu in found.values()}
        with self._lock:
            # a session just added may not be in /proc yet under its sid: keep new leaders
            self._sessions = {s for s in self._sessions if s in alive or s not in sessions}
        return found

    def pids(self) -> list[int]:
        return sorted(self.scan())

    def cpu_busy(self, interval: float) -> float:
        """CPUs kept busy by our processes since the previous call (e.g. 2.0 = two cores)."""
        current = {pid: cpu for pid, (_sid, cpu) in self.scan().items()}
        used = sum(max(0.0, cpu - self._last_cpu.get(pid, 0.0)) for pid, cpu in current.items())
        self._last_cpu = current
        return used / interval if interval > 0 else 0.0

    def kill_session(self, sid: int, sig: int = signal.SIGKILL) -> None:
        """Signal the command's process group and any stragglers in its session."""
        try:
            os.killpg(sid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, (session, _cpu) in self.scan().items():
            if session == sid:
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def kill_all(self) -> None:
        with self._lock:
            sessions = set(self._sessions)
        for sid in sessions:
            self.kill_session(sid)
