"""The phone's private mount namespace: start, join, tear down.

Commands must see ``/data/local/tmp``, ``/proc/meminfo`` and ``/sys/...`` as a
phone has them, while running the host's binaries. A long-lived helper
(``_nsinit.py`` under ``unshare -m -u``) builds that view once; each command then
joins it with ``nsenter``, which costs one exec instead of a dozen mounts.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_INIT_SCRIPT = Path(__file__).with_name("_nsinit.py")


@dataclass(frozen=True)
class Mount:
    """``source`` (host path) appears at ``target`` (device path) inside the phone."""

    source: Path
    target: str
    read_only: bool


@functools.lru_cache(maxsize=1)
def namespaces_supported() -> bool:
    """Whether this host lets us make mount namespaces (root, or CAP_SYS_ADMIN). Checked once."""
    if not (shutil.which("unshare") and shutil.which("nsenter")):
        return False
    try:
        probe = subprocess.run(
            ["unshare", "-m", "-u", "--propagation", "private", "true"],
            capture_output=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class MountNamespace:
    """One running namespace; ``wrap`` turns a command line into one that runs inside it."""

    def __init__(self, newroot: Path, mounts: list[Mount], symlinks: dict[str, str],
                 hostname: str = "localhost") -> None:
        self.newroot = newroot
        self.mounts = mounts
        self.symlinks = symlinks
        self.hostname = hostname
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("namespace not started")
        return self._proc.pid

    @property
    def root_path(self) -> Path:
        """The namespace's ``/`` as seen from the host (through procfs)."""
        return Path(f"/proc/{self.pid}/root")

    def start(self, timeout: float = 15.0) -> None:
        self.newroot.mkdir(parents=True, exist_ok=True)
        own = {m.target.strip("/").split("/")[0] for m in self.mounts}
        own |= {link.strip("/").split("/")[0] for link in self.symlinks}
        spec = {
            "newroot": str(self.newroot),
            "own_top_level": sorted(own | {"proc", "sys", "tmp"}),
            "mounts": [
                {"source": str(m.source), "target": m.target, "read_only": m.read_only}
                for m in self.mounts
            ],
            "symlinks": sorted(self.symlinks.items()),
            "hostname": self.hostname,
        }
        proc = self._proc = subprocess.Popen(
            ["unshare", "-m", "-u", "--propagation", "private",
             sys.executable, "-I", "-S", str(_INIT_SCRIPT), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        line: list[bytes] = []
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not line or line[0].strip() != b"ready":
            self.stop()
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise OSError(f"mount namespace did not start: {err.strip() or 'timeout'}")
        threading.Thread(target=self._log_stderr, daemon=True).start()

    def _log_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        for raw in proc.stderr:
            log.warning("namespace: %s", raw.decode(errors="replace").rstrip())

    def wrap(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-u", "-r", "-w", "--", *argv]

    def stop(self) -> None:
        """Ends the helper; the kernel frees the namespace when its last process leaves."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
