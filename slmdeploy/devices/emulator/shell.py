"""``shell:``, ``shell,v2,...:`` and ``exec:`` services.

Without the shell protocol (v1, exec) the stream carries raw bytes both ways,
stderr is merged into stdout and the exit code is lost, as on a real phone. With
``v2`` every chunk is a packet [id:1][length:4 LE][data] (stdin 0, stdout 1,
stderr 2, exit 3, close-stdin 4, window-size 5) and the last packet carries the
exit code. If the host closes the stream first, the command's process group dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slmdeploy.devices.emulator.stream import Stream, StreamClosed, StreamReader

if TYPE_CHECKING:
    from slmdeploy.devices.emulator.connection import Connection
    from slmdeploy.devices.emulator.daemon import EmulatedPhone

log = logging.getLogger(__name__)

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW_SIZE = range(6)
PACKET_HEADER = struct.Struct("<BI")
READ_SIZE = 64 * 1024
KILL_GRACE_S = 0.3  # after the host closes the stream, before the command's session is killed


def packet(kind: int, data: bytes) -> bytes:
    return PACKET_HEADER.pack(kind, len(data)) + data


@dataclass(frozen=True)
class ShellRequest:
    command: str | None  # None: interactive login shell
    shell_protocol: bool
    pty: bool
    term: str | None


def parse_shell_service(service: str) -> ShellRequest:
    """``shell[,arg...]:command`` -> request, with adbd's defaults (pty iff no command)."""
    head, _, command = service.partition(":")
    args = head.split(",")[1:]
    use_pty = not command
    protocol = False
    term = "dumb"
    for arg in args:
        if arg == "raw":
            use_pty = False
        elif arg == "pty":
            use_pty = True
        elif arg == "v2":
            protocol = True
        elif arg.startswith("TERM="):
            term = arg[5:]
        elif arg:
            log.warning("ignoring unknown shell argument %r", arg)
    return ShellRequest(command or None, protocol, use_pty, term)


def exit_status(returncode: int) -> int:
    """adbd's exit byte: the status, or 128 + signal for a killed command."""
    return (0x80 | -returncode) if returncode < 0 else returncode & 0xFF


class ShellSession:
    """One command attached to one stream."""

    def __init__(self, phone: EmulatedPhone, conn: Connection, stream: Stream, request: ShellRequest) -> None:
        self.phone = phone
        self.conn = conn
        self.stream = stream
        self.request = request
        self.proc: subprocess.Popen[bytes] | None = None
        self._stdin_fd: int | None = None
        self._master: int | None = None
        self._stdin_lock = threading.Lock()

    def run(self) -> None:
        try:
            outputs = self._start()
        except OSError as exc:  # adbd's ReportError: a message and exit status 126
            self._cleanup_fds()
            message = f"error: {exc}\n".encode()
            if self.request.shell_protocol:
                self.stream.write(packet(ID_STDERR, message) + packet(ID_EXIT, bytes([126])))
            else:
                self.stream.write(message)
            return
        assert self.proc is not None
        self.stream.on_close(self._on_stream_closed)
        timer = self._arm_drop_fault()
        pumps = [threading.Thread(target=self._pump_output, args=(fd, kind), daemon=True) for fd, kind in outputs]
        for thread in pumps:
            thread.start()
        threading.Thread(target=self._pump_input, daemon=True).start()

        code = self.proc.wait()
        for thread in pumps:
            thread.join()
        if timer is not None:
            timer.cancel()
        self._cleanup_fds()
        if self.request.shell_protocol and not self.stream.closed:
            try:
                self.stream.write(packet(ID_EXIT, bytes([exit_status(code)])))
            except StreamClosed:
                pass

    def _start(self) -> list[tuple[int, int]]:
        """Spawn the command; returns (fd, packet id) of its outputs."""
        req = self.request
        if req.pty:
            self._master, slave = pty.openpty()
            try:
                self.proc = self.phone.spawn(req.command, term=req.term, stdin=slave, stdout=slave, stderr=slave)
            finally:
                os.close(slave)
            self._stdin_fd = self._master
            outputs = [(self._master, ID_STDOUT)]
        else:
            stderr = subprocess.PIPE if req.shell_protocol else subprocess.STDOUT
            self.proc = self.phone.spawn(req.command, term=req.term, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=stderr)
            assert self.proc.stdin and self.proc.stdout
            self._stdin_fd = self.proc.stdin.fileno()
            outputs = [(self.proc.stdout.fileno(), ID_STDOUT)]
            if self.proc.stderr is not None:
                outputs.append((self.proc.stderr.fileno(), ID_STDERR))
        return outputs

    # -- plumbing ------------------------------------------------------------------------
    def _pump_output(self, fd: int, kind: int) -> None:
        while True:
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:  # EIO: the pty's other side is gone
                data = b""
            if not data:
                return
            try:
                self.stream.write(packet(kind, data) if self.request.shell_protocol else data)
            except StreamClosed:
                self._kill_if_running()
                return

    def _pump_input(self) -> None:
        if self.request.shell_protocol:
            reader = StreamReader(self.stream)
            try:
                while True:
                    kind, length = PACKET_HEADER.unpack(reader.read_exact(PACKET_HEADER.size))
                    self._on_packet(kind, reader.read_exact(length))
            except EOFError:
                return
        while chunk := self.stream.read():
            self._write_stdin(chunk)
        self._close_stdin()  # v1 has no close-stdin packet: the end of the stream is EOF

    def _on_packet(self, kind: int, data: bytes) -> None:
        if kind == ID_STDIN:
            self._write_stdin(data)
        elif kind == ID_CLOSE_STDIN and not self.request.pty:
            self._close_stdin()
        elif kind == ID_WINDOW_SIZE:
            try:
                rows, cols, xpix, ypix = (int(v) for v in data.rstrip(b"\0").decode().replace(",", "x").split("x"))
            except ValueError:
                log.debug("bad window size %r", data)
                return
            with self._stdin_lock:
                if self._master is not None:
                    fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))

    # stdin and the pty master are closed by one thread while another may write to them:
    # the lock keeps a write from landing on a recycled file descriptor.
    def _write_stdin(self, data: bytes) -> None:
        with self._stdin_lock:
            if self._stdin_fd is None:
                return  # stdin closed: the data is consumed and dropped, like adbd does
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(self._stdin_fd, view):]
            except OSError:
                self._close_stdin_locked()

    def _close_stdin(self) -> None:
        with self._stdin_lock:
            self._close_stdin_locked()

    def _close_stdin_locked(self) -> None:
        if self._master is None and self._stdin_fd is not None and self.proc is not None:
            self._stdin_fd = None
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def _cleanup_fds(self) -> None:
        with self._stdin_lock:
            self._close_stdin_locked()
            if self._master is not None:
                os.close(self._master)
                self._master = self._stdin_fd = None

    def _on_stream_closed(self) -> None:
        """The host went away: give queued stdin a moment to drain, then kill, as adbd's SIGHUP."""
        timer = threading.Timer(KILL_GRACE_S, self._kill_if_running)
        timer.daemon = True
        timer.start()

    def _kill_if_running(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            log.info("killing %r: stream closed", self.request.command)
            self.phone.processes.kill_session(proc.pid, signal.SIGHUP)
            self.phone.processes.kill_session(proc.pid, signal.SIGKILL)

    def _arm_drop_fault(self) -> threading.Timer | None:
        delay = self.phone.faults.take_shell_drop(self.request.command)
        if delay is None:
            return None

        def fire() -> None:
            log.warning("fault: dropping the transport %.1fs into %r", delay, self.request.command)
            self._kill_if_running()
            self.conn.drop()

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timer.start()
        return timer


def shell_request(service: str) -> ShellRequest:
    """The request for a ``shell...`` or ``exec:`` service name."""
    if service.startswith("exec:"):
        return ShellRequest(service[5:], shell_protocol=False, pty=False, term=None)
    return parse_shell_service(service)
