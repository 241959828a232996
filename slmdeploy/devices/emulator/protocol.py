"""ADB wire protocol: the 24-byte message header and its constants.

Every adb transport (USB or TCP) carries the same messages: a little-endian header
of six 32-bit words (command, arg0, arg1, data length, data checksum, magic) and
then ``data length`` bytes of payload. Keeping the packing in one place lets the
daemon, the tests' raw client and the sync/shell services agree byte for byte.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

HEADER = struct.Struct("<6I")


def _cmd(name: bytes) -> int:
    return int.from_bytes(name, "little")


A_SYNC = _cmd(b"SYNC")
A_CNXN = _cmd(b"CNXN")
A_AUTH = _cmd(b"AUTH")
A_OPEN = _cmd(b"OPEN")
A_OKAY = _cmd(b"OKAY")
A_CLSE = _cmd(b"CLSE")
A_WRTE = _cmd(b"WRTE")
A_STLS = _cmd(b"STLS")  # TLS upgrade: known so it can be logged, never offered

COMMAND_NAMES = {
    value: name
    for name, value in (
        ("SYNC", A_SYNC), ("CNXN", A_CNXN), ("AUTH", A_AUTH), ("OPEN", A_OPEN),
        ("OKAY", A_OKAY), ("CLSE", A_CLSE), ("WRTE", A_WRTE), ("STLS", A_STLS),
    )
}

# Versions: peers at or above SKIP_CHECKSUM send and expect a zero data checksum.
A_VERSION_MIN = 0x01000000
A_VERSION_SKIP_CHECKSUM = 0x01000001
A_VERSION = 0x01000001

MAX_PAYLOAD = 256 * 1024  # what this daemon announces in its CNXN
MAX_ACCEPTED_PAYLOAD = 1024 * 1024  # largest message read from a peer (adb's own cap)

# AUTH arg0 values.
AUTH_TOKEN = 1
AUTH_SIGNATURE = 2
AUTH_RSAPUBLICKEY = 3
TOKEN_SIZE = 20


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid adb message."""


@dataclass(frozen=True)
class Message:
    """One adb message; ``data`` is the payload after the header."""

    command: int
    arg0: int
    arg1: int
    data: bytes = b""

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, f"0x{self.command:08x}")

    def __repr__(self) -> str:
        return f"Message({self.name}, {self.arg0}, {self.arg1}, {len(self.data)} bytes)"


def checksum(data: bytes) -> int:
    """adb's 'checksum': the byte sum, used only by peers older than SKIP_CHECKSUM."""
    return sum(data) & 0xFFFFFFFF


def pack(msg: Message, *, with_checksum: bool) -> bytes:
    """Header plus payload, ready for ``sendall``."""
    check = checksum(msg.data) if with_checksum else 0
    header = HEADER.pack(
        msg.command, msg.arg0, msg.arg1, len(msg.data), check, msg.command ^ 0xFFFFFFFF
    )
    return header + msg.data


def unpack_header(header: bytes) -> tuple[int, int, int, int, int]:
    """(command, arg0, arg1, length, checksum) of a 24-byte header; checks the magic."""
    command, arg0, arg1, length, check, magic = HEADER.unpack(header)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic 0x{magic:08x} for command 0x{command:08x}")
    if length > MAX_ACCEPTED_PAYLOAD:
        raise ProtocolError(f"payload of {length} bytes exceeds {MAX_ACCEPTED_PAYLOAD}")
    return command, arg0, arg1, length, check


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from ``sock``; ``ConnectionError`` on EOF."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return bytes(buf)


def read_message(sock: socket.socket, *, verify_checksum: bool) -> Message:
    """Read one whole message; with ``verify_checksum`` a bad sum is a ProtocolError."""
    command, arg0, arg1, length, check = unpack_header(recv_exact(sock, HEADER.size))
    data = recv_exact(sock, length) if length else b""
    if verify_checksum and checksum(data) != check:
        raise ProtocolError(f"bad checksum on {COMMAND_NAMES.get(command, command)}")
    return Message(command, arg0, arg1, data)
