"""Silence native (C/C++) stderr chatter for a moment.

ExecuTorch's runtime logs CPU-probing notes straight to file descriptor 2 when it first
loads a program in-process; Python's logging cannot reach them. Harness runs keep their
stderr (it lands in the run directory); only in-process checks use this.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
