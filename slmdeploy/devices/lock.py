"""One run per device at a time, across processes on this host.

An ``fcntl.flock`` on a per-device lock file: a second process waits (or fails after
``timeout``), and the kernel releases the lock when its holder dies, so a crashed run
never holds a device forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from pathlib import Path
from typing import Iterator

from slmdeploy.errors import DeviceError


def lock_dir() -> Path:
    root = os.environ.get("SLMDEPLOY_CACHE") or Path.home() / ".cache" / "slmdeploy"
    path = Path(root) / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def device_lock(spec: str, timeout: float = 600.0, poll: float = 0.2) -> Iterator[None]:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", spec)
    path = lock_dir() / f"{name}.lock"
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise DeviceError(
                        f"device {spec} is busy: {holder} holds its lock ({path}). Wait for that run to finish."
                    ) from None
                time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
