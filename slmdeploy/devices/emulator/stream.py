"""One adb stream (an OPENed service) with adb's flow control.

adb allows one WRTE in flight per stream and direction: the sender waits for the
receiver's OKAY before the next WRTE. Here the OKAY for a received WRTE is sent
when a service *consumes* the data, so a slow consumer (a process not reading its
stdin) back-pressures the host instead of growing a buffer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from slmdeploy.devices.emulator.protocol import A_CLSE, A_OKAY, A_WRTE, Message


class StreamClosed(ConnectionError):
    """The stream (or its whole connection) is gone."""


class StreamOwner(Protocol):
    """What a stream needs from its connection."""

    @property
    def max_payload(self) -> int: ...

    def send(self, msg: Message) -> None: ...

    def forget_stream(self, local_id: int) -> None: ...


class Stream:
    """A bidirectional byte pipe between a service and the host."""

    def __init__(self, owner: StreamOwner, local_id: int, remote_id: int, service: str) -> None:
        self.owner = owner
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self._cond = threading.Condition()
        self._inbox: deque[bytes] = deque()
        self._closed = False
        self._can_send = True  # the OKAY that answered OPEN lets the first WRTE go
        self._write_lock = threading.Lock()
        self._on_close: list[Callable[[], None]] = []

    # -- called by the connection's reader thread --------------------------------
    def deliver(self, data: bytes) -> None:
        with self._cond:
            if not self._closed:
                self._inbox.append(data)
                self._cond.notify_all()

    def ready(self) -> None:
        with self._cond:
            self._can_send = True
            self._cond.notify_all()

    def peer_closed(self, *, acknowledge: bool = False) -> None:
        """The host sent CLSE (``acknowledge``: answer with CLSE, as adbd does) or the link died."""
        if self._mark_closed() and acknowledge:
            self._notify(A_CLSE)

    # -- called by services --------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once when the stream closes (at once if it already has)."""
        with self._cond:
            if not self._closed:
                self._on_close.append(callback)
                return
        callback()

    def read(self) -> bytes:
        """The next WRTE payload (OKAYed now); b"" once the stream is closed and drained."""
        with self._cond:
            self._cond.wait_for(lambda: self._inbox or self._closed)
            if not self._inbox:
                return b""
            data = self._inbox.popleft()
            closed = self._closed
        if not closed:
            self._notify(A_OKAY)
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` as WRTEs of at most the negotiated payload size."""
        view = memoryview(data)
        with self._write_lock:
            while view:
                size = self.owner.max_payload
                with self._cond:
                    self._cond.wait_for(lambda: self._can_send or self._closed)
                    if self._closed:
                        raise StreamClosed(f"stream {self.service!r} is closed")
                    self._can_send = False
                self._send(Message(A_WRTE, self.local_id, self.remote_id, bytes(view[:size])))
                view = view[size:]

    def close(self) -> None:
        """Close from the device side: CLSE to the host, once (a dead link needs none)."""
        if self._mark_closed():
            self._notify(A_CLSE)

    # -- internals ----------------------------------------------------------------
    def _notify(self, command: int) -> None:
        """A bodiless OKAY or CLSE; if the link is dead the stream is closed and that is all."""
        try:
            self._send(Message(command, self.local_id, self.remote_id))
        except StreamClosed:
            pass

    def _send(self, msg: Message) -> None:
        try:
            self.owner.send(msg)
        except OSError as exc:
            self._mark_closed()
            raise StreamClosed(str(exc)) from exc

    def _mark_closed(self) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._closed = True
            callbacks, self._on_close = self._on_close, []
            self._cond.notify_all()
        self.owner.forget_stream(self.local_id)
        for callback in callbacks:
            callback()
        return True


class StreamReader:
    """Byte-stream view of a Stream: WRTE boundaries mean nothing to sync or shell v2."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._buf = bytearray()

    def _fill(self) -> bool:
        chunk = self.stream.read()
        if not chunk:
            return False
        self._buf += chunk
        return True

    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes; EOFError if the stream ends first."""
        while len(self._buf) < n:
            if not self._fill():
                raise EOFError(f"stream ended with {len(self._buf)} of {n} bytes")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out
