"""What both adb transports share: the sync protocol, shell v2 framing, shell v1 markers.

The two transports carry the same bytes over different pipes: ``adb`` through the adb
server (a plain TCP byte stream per service), ``adb-direct`` straight to adbd (adb
messages, one WRTE in flight). Both hand this module a ``ByteStream``; the sync
protocol (push/pull), the shell-v2 packet parser and the shell-v1 exit-code markers
are written once here.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import struct
import time
from pathlib import Path
from typing import BinaryIO, Protocol

from slmdeploy.devices.base import ProgressFn, ShellResult
from slmdeploy.errors import DeviceError

WORKDIR = "/data/local/tmp/slmdeploy"
SCRATCH = "/data/local/tmp"  # exists on every phone, writable by the shell user
SYNC_DATA_MAX = 64 * 1024  # adbd refuses DATA packets larger than this
PUSH_MODE = 0o100644  # S_IFREG | rw-r--r--
_REQ = struct.Struct("<4sI")

# shell protocol v2 packet ids
V2_STDIN, V2_STDOUT, V2_STDERR, V2_EXIT, V2_CLOSE_STDIN = 0, 1, 2, 3, 4
_V2_HEADER = struct.Struct("<BI")


class ByteStream(Protocol):
    """One open adb service as a byte pipe. Both methods raise DeviceError on failure."""

    batch: int  # how many bytes ``sendall`` is best given at once

    def sendall(self, data: bytes | memoryview) -> None: ...

    def recv_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes; EOFError if the service closed first."""


def check_remote_path(path: str) -> str:
    if not path or "\0" in path or "\n" in path:
        raise DeviceError(f"invalid device path {path!r}")
    if len(path.encode()) > 1024:
        raise DeviceError(f"device path too long ({len(path.encode())} bytes): {path[:80]}...")
    return path


# -- sync: push / pull ----------------------------------------------------------------------
def _reply(stream: ByteStream, remote: str, what: str) -> None:
    ident, length = _REQ.unpack(stream.recv_exact(8))
    if ident == b"OKAY":
        return
    if ident == b"FAIL":
        reason = stream.recv_exact(min(length, 1 << 16)).decode(errors="replace")
        raise DeviceError(f"{what} {remote} failed on the device: {reason}")
    raise DeviceError(f"{what} {remote}: unexpected sync reply {ident!r}")


def sync_send(stream: ByteStream, local: Path, remote: str, progress: ProgressFn | None, mode: int = PUSH_MODE) -> int:
    """Push ``local`` to ``remote`` on an open ``sync:`` stream; returns bytes sent.

    The file is read straight into one reused batch buffer behind each packet's DATA header
    (no copy per packet in Python), so memory stays at ``stream.batch`` whatever the file size;
    ``progress`` is called after every batch. adbd answers OKAY, or FAIL with the reason (no
    space, read-only...) after DONE or as soon as it gives up, closing the stream.
    """
    spec = f"{check_remote_path(remote)},{mode}".encode()
    head = _REQ.pack(b"SEND", len(spec)) + spec
    packet = _REQ.size + SYNC_DATA_MAX
    buf = bytearray(len(head) + max(1, stream.batch // packet) * packet + _REQ.size)  # + room for DONE
    view = memoryview(buf)
    buf[:len(head)] = head
    pos, sent, pending = len(head), 0, 0
    try:
        with open(local, "rb", buffering=0) as fh:
            while True:
                n = fh.readinto(view[pos + _REQ.size:pos + packet])
                if n:
                    _REQ.pack_into(buf, pos, b"DATA", n)
                    pos, sent, pending = pos + _REQ.size + n, sent + n, pending + n
                    if pos + packet <= len(buf) - _REQ.size:
                        continue  # room for another packet in this batch
                else:
                    _REQ.pack_into(buf, pos, b"DONE", int(time.time()))
                    pos += _REQ.size
                stream.sendall(view[:pos])
                if progress and pending:
                    progress(pending)
                if not n:
                    break
                pos = pending = 0
    except DeviceError:  # the device may have said why it stopped listening
        try:
            _reply(stream, remote, "push to")
        except (EOFError, OSError, TimeoutError):
            pass
        raise
    _reply(stream, remote, "push to")
    return sent


def sync_recv(stream: ByteStream, remote: str, out: BinaryIO, progress: ProgressFn | None) -> int:
    """Pull ``remote`` into the open binary file ``out``; returns bytes received."""
    path = check_remote_path(remote).encode()
    stream.sendall(_REQ.pack(b"RECV", len(path)) + path)
    received = 0
    while True:
        ident, length = _REQ.unpack(stream.recv_exact(8))
        if ident == b"DATA":
            if length > SYNC_DATA_MAX:
                raise DeviceError(f"pull {remote}: DATA packet of {length} bytes exceeds the protocol's limit")
            out.write(stream.recv_exact(length))
            received += length
            if progress:
                progress(length)
        elif ident == b"DONE":
            return received
        elif ident == b"FAIL":
            reason = stream.recv_exact(min(length, 1 << 16)).decode(errors="replace")
            raise DeviceError(f"pull {remote} failed on the device: {reason}")
        else:
            raise DeviceError(f"pull {remote}: unexpected sync reply {ident!r}")


def sync_quit(stream: ByteStream) -> None:
    try:
        stream.sendall(_REQ.pack(b"QUIT", 0))
    except (DeviceError, OSError):
        pass


def pull_atomically(local: Path, fetch) -> None:
    """Write a pull to ``local.part`` and rename it into place only when complete."""
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    part = local.with_name(local.name + ".part")
    part.unlink(missing_ok=True)
    try:
        with open(part, "xb") as out:  # exclusive: never through a link someone left there
            fetch(out)
        os.replace(part, local)
    finally:
        part.unlink(missing_ok=True)


# -- shell v2 -----------------------------------------------------------------------------------
def v2_packet(kind: int, data: bytes = b"") -> bytes:
    return _V2_HEADER.pack(kind, len(data)) + data


def read_v2(stream: ByteStream, deadline: float, what: str) -> ShellResult:
    """Collect stdout, stderr and the exit code of a ``shell,v2`` service."""
    out, err = bytearray(), bytearray()
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        try:
            kind, length = _V2_HEADER.unpack(stream.recv_exact(_V2_HEADER.size))
            data = stream.recv_exact(length) if length else b""
        except EOFError:
            raise DeviceError(f"connection lost before {what} finished (no exit status)") from None
        if kind == V2_STDOUT:
            out += data
        elif kind == V2_STDERR:
            err += data
        elif kind == V2_EXIT:
            return ShellResult(data[0] if data else -1, out.decode(errors="replace"), err.decode(errors="replace"))


# -- shell v1: exit code and stderr through markers ---------------------------------------------
STDERR_PREFIX = ".slmdeploy-stderr-"


class V1Command:
    """A command wrapped so a shell-v1 stream (stderr merged, no exit code) gives both back.

    The command runs under ``sh -c`` with stdin from /dev/null and stderr to a scratch
    file; afterwards a line with a random marker carries ``$?``, and the scratch file is
    printed after it and removed. Output without the marker means the stream broke. The
    scratch file's name ends in the wrapping shell's pid (``$$``): when the link dies or the
    command times out, adbd kills that shell before it removes the file, and
    ``stale_scratch_cleanup`` later removes every scratch file whose shell is gone.
    """

    def __init__(self, cmd: str, scratch: str = SCRATCH) -> None:
        token = secrets.token_hex(8)
        self.marker = f"__slmdeploy_{token}__"
        errfile = shlex.quote(f"{scratch}/{STDERR_PREFIX}{token}-") + "$$"
        self.line = (
            f"sh -c {shlex.quote(cmd)} </dev/null 2>{errfile}; "
            f"printf '\\n{self.marker}%d{self.marker}\\n' $?; cat {errfile} 2>/dev/null; rm -f {errfile}"
        )
        self._pattern = re.compile(rb"\n" + re.escape(self.marker.encode()) + rb"(\d+)" + re.escape(self.marker.encode()) + rb"\n")

    def parse(self, raw: bytes, what: str) -> ShellResult:
        found = None
        for found in self._pattern.finditer(raw):
            pass  # the last marker line: a command cannot print the random marker by accident
        if found is None:
            raise DeviceError(f"connection lost before {what} finished (no exit marker)")
        stdout = raw[: found.start()]
        stderr = raw[found.end():]
        return ShellResult(int(found.group(1)), stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def stale_scratch_cleanup(scratch: str = SCRATCH) -> str:
    """A shell line removing ``V1Command`` scratch files whose shell (the pid ending the name) is gone.

    Files of commands still running are kept: another process may be using the phone.
    """
    pattern = shlex.quote(f"{scratch}/{STDERR_PREFIX}") + "*"
    return (f"for f in {pattern}; do [ -e \"$f\" ] || continue; p=\"${{f##*-}}\"; "
            f"case \"$p\" in ''|*[!0-9]*) rm -f \"$f\";; *) [ -d \"/proc/$p\" ] || rm -f \"$f\";; esac; done; true")


def describe(cmd: str) -> str:
    return cmd if len(cmd) <= 160 else cmd[:157] + "..."
