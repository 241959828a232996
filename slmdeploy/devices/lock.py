"""One run per device at a time, across processes on this host.

An ``fcntl.flock`` on a per-device lock file: a second process waits (or fails after
``timeout``), and the kernel releases the lock when its holder dies, so a crashed run
never holds a device forever. The file is named after the physical device
(``spec.identity``), not the spec string, so ``adb:HOST:PORT`` and ``adb-direct:HOST:PORT``
(one phone) or ``ssh:u@h`` and ``ssh:u@h:22`` (one board) contend for one lock.

A process that has to wait says so (a warning on the ``slmdeploy.devices.lock`` logger, which
reaches stderr unless the application routes logging elsewhere), naming the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from pathlib import Path
from typing import Iterator

from slmdeploy.devices.spec import identity
from slmdeploy.errors import DeviceError

log = logging.getLogger(__name__)


def lock_dir() -> Path:
    root = os.environ.get("SLMDEPLOY_CACHE") or Path.home() / ".cache" / "slmdeploy"
    path = Path(root) / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_path(spec: str) -> Path:
    """The lock file of the device ``spec`` names (one per physical device)."""
    name = re.sub(r"[^A-Za-z0-9_.@-]", "_", identity(spec))
    return lock_dir() / f"{name}.lock"


@contextlib.contextmanager
def device_lock(spec: str, timeout: float = 600.0, poll: float = 0.2) -> Iterator[None]:
    path = lock_path(spec)
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if not waited and timeout > 0:
                    log.warning("waiting for device %s: %s holds its lock (waiting up to %.0f s)", spec, holder, timeout)
                    waited = True
                if time.monotonic() >= deadline:
                    raise DeviceError(
                        f"device {spec} is busy: {holder} holds its lock ({path}). Wait for that run to finish."
                    ) from None
                time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} ({spec})")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
