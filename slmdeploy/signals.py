"""SIGTERM and SIGHUP end work the way Ctrl-C does: as an exception, so cleanups run and measurements are kept.

Python's default for SIGTERM/SIGHUP kills the process on the spot: no harness is stopped, no
trace pulled, run.json stays ``running``, an export's staging directory stays. While a CLI
command or ``bench()`` runs on the main thread they raise ``Terminated`` (a
``KeyboardInterrupt``: code that survives Ctrl-C survives these too). SIGKILL cannot be
caught; ``bench.recover`` settles what it leaves.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

CAUGHT = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """A termination signal arrived; ``signum`` says which (the CLI exits with 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM/SIGHUP raise ``Terminated`` — on the main thread, and only where the
    program left their default handler (an application's own handler is never replaced)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in CAUGHT}
    mine = [s for s, h in previous.items() if h == signal.SIG_DFL]
    for s in mine:
        signal.signal(s, _raise)
    try:
        yield
    finally:
        for s in mine:
            signal.signal(s, previous[s])
