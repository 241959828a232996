"""``adb-direct:HOST:PORT``: a phone in wireless-debugging mode, without an adb server.

adb-shell (``AdbDeviceTcp``) makes the connection and the RSA authentication, with the
same key the adb server uses (``$ANDROID_USER_HOME/adbkey`` or ``~/.android/adbkey``;
generated when missing — the phone then asks once to allow it). adb-shell only speaks
shell v1 (stderr merged into stdout, no exit status) and buffers pushes in ways that
do not suit hundreds of MB, so on top of its connection this module:

* runs every command through ``adb_common.V1Command`` (stderr to a scratch file, the
  exit status after a random marker), so exit codes and stderr are as reliable as v2;
* pushes and pulls with ``adb_common``'s sync code: one adb payload in flight, 64 KiB
  sync packets, progress after each payload, memory bounded by one payload;
* keeps one connection and replaces it after any transport error or timeout (a timed-out
  command's stream dies with it, and adbd kills the command); each new connection first
  removes the stderr scratch files such a killed command left in /data/local/tmp.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from slmdeploy.devices import adb_common as ac
from slmdeploy.devices.base import DeviceInfo, ProgressFn, ShellResult, quote_cmd
from slmdeploy.devices.lock import device_lock
from slmdeploy.errors import DeviceError

DEFAULT_TIMEOUT = 300.0
IO_TIMEOUT = 60.0
VERSION_SKIP_CHECKSUM = 0x01000001
T = TypeVar("T")

try:  # an optional dependency: the error says how to install it
    import numpy as _np
    from adb_shell import constants as _c
    from adb_shell import exceptions as _x
    from adb_shell.adb_device import AdbDevice as _AdbShellDevice
    from adb_shell.adb_device import _AdbIOManager
    from adb_shell.adb_message import AdbMessage as _AdbMessage
    from adb_shell.transport.tcp_transport import TcpTransport as _TcpTransport
except ImportError:  # pragma: no cover
    _AdbShellDevice = None  # type: ignore[assignment,misc]


def default_key_path() -> Path:
    home = os.environ.get("ANDROID_USER_HOME")
    return (Path(home) if home else Path.home() / ".android") / "adbkey"


def load_signer(path: str | Path | None = None):
    """The RSA signer for adb auth; creates the key pair (as adb does) when missing."""
    from adb_shell.auth.keygen import keygen, write_public_keyfile
    from adb_shell.auth.sign_cryptography import CryptographySigner

    key = Path(path) if path else default_key_path()
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        keygen(str(key))
        key.chmod(0o600)
    elif not key.with_name(key.name + ".pub").exists():
        write_public_keyfile(str(key), str(key) + ".pub")
    return CryptographySigner(str(key))


if _AdbShellDevice is not None:

    class _Transport(_TcpTransport):
        """adb-shell's TCP transport, made safe: whole writes, and EOF is an error (not a spin)."""

        def connect(self, transport_timeout_s):
            super().connect(transport_timeout_s)
            sock = self._connection
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)

        def bulk_read(self, numbytes, transport_timeout_s):
            readable, _, _ = select.select([self._connection], [], [], transport_timeout_s)
            if not readable:
                raise _x.TcpTimeoutException(f"no data from {self._host}:{self._port} for {transport_timeout_s} s")
            data = self._connection.recv(numbytes)
            if not data:
                raise ConnectionResetError(f"{self._host}:{self._port} closed the connection")
            return data

        def bulk_write(self, data, transport_timeout_s):
            view = memoryview(data)
            while view:
                _, writable, _ = select.select([], [self._connection], [], transport_timeout_s)
                if not writable:
                    raise _x.TcpTimeoutException(f"{self._host}:{self._port} accepted no data for {transport_timeout_s} s")
                view = view[self._connection.send(view):]
            return len(data)

    def _sum(data: bytes) -> int:
        """adb's byte-sum checksum, by numpy (adb-shell's Python loop costs ~1 s per 100 MB)."""
        return int(_np.frombuffer(data, dtype=_np.uint8).sum(dtype=_np.uint64)) & 0xFFFFFFFF if data else 0

    class _IOManager(_AdbIOManager):
        """adb-shell's message layer, offering protocol version 0x01000001 (no payload checksums).

        adbd since Android 9 then neither sends nor checks the byte-sum checksum; an older
        adbd answers with 0x01000000 and checksums stay on both ways. Until the device's
        CNXN says which, outgoing messages carry a real checksum (always acceptable) and an
        incoming zero checksum is accepted (that is what a device at 0x01000001 sends).
        """

        def __init__(self, transport) -> None:
            super().__init__(transport)
            self.skip_checksum = False

        def connect(self, *args, **kwargs):
            self.skip_checksum = False
            return super().connect(*args, **kwargs)

        def _send(self, msg, adb_info):
            if msg.command == _CNXN_WIRE:
                msg.arg0 = max(msg.arg0, VERSION_SKIP_CHECKSUM)
            check = 0 if self.skip_checksum else _sum(msg.data)
            header = struct.pack(_c.MESSAGE_FORMAT, msg.command, msg.arg0, msg.arg1, len(msg.data), check, msg.magic)
            self._transport.bulk_write(header + msg.data if len(msg.data) < 4096 else header, adb_info.transport_timeout_s)
            if len(msg.data) >= 4096:
                self._transport.bulk_write(msg.data, adb_info.transport_timeout_s)

        def _read_packet_from_device(self, adb_info):
            header = self._read_bytes_from_device(_c.MESSAGE_SIZE, adb_info)
            cmd, arg0, arg1, length, check, _magic = struct.unpack(_c.MESSAGE_FORMAT, header)
            command = _c.WIRE_TO_ID.get(cmd)
            if not command:
                raise _x.InvalidCommandError(f"unknown adb command 0x{cmd:08x}")
            data = self._read_bytes_from_device(length, adb_info) if length else b""
            if command == _c.CNXN:
                self.skip_checksum = arg0 >= VERSION_SKIP_CHECKSUM
            if data and not (self.skip_checksum or check == 0) and _sum(data) != check:
                raise _x.InvalidChecksumError(f"bad checksum on a {command!r} message")
            return command, arg0, arg1, data

    _CNXN_WIRE = _c.ID_TO_WIRE[_c.CNXN]


class _DirectStream:
    """One adb stream on adb-shell's connection, as an ``adb_common.ByteStream``.

    Uses adb-shell's message layer (``_open``, ``_io_manager``, ``_read_until``): a WRTE
    is sent only after the previous one was OKAYed, and WRTEs from the device are
    buffered (each OKAYed) so a FAIL that overtakes an OKAY is not lost.
    """

    def __init__(self, dev, service: str, idle_timeout: float, deadline: float | None = None) -> None:
        self.dev = dev
        self.deadline = deadline
        self.info = dev._open(service.encode(), idle_timeout, idle_timeout, None)
        self.batch = max(1024, min(dev._maxdata, 1 << 20))
        self._inbox = bytearray()
        self.closed = False

    def _check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError("deadline passed")

    def _receive(self, expected: list[bytes]) -> bytes:
        """Read messages until one in ``expected``; device WRTEs are kept in the inbox."""
        while True:
            self._check_deadline()
            cmd, data = self.dev._read_until(expected + [_c.WRTE, _c.CLSE], self.info)
            if cmd == _c.WRTE:
                self._inbox += data
            if cmd == _c.CLSE:
                self.closed = True
            if cmd in expected or cmd == _c.CLSE:
                return cmd

    def sendall(self, data: bytes | memoryview) -> None:
        step = self.batch
        for offset in range(0, len(data), step):
            if self.closed:
                raise DeviceError("the device closed the stream")
            payload = bytes(data[offset:offset + step])  # the caller may reuse its buffer once this returns
            msg = _AdbMessage(_c.WRTE, self.info.local_id, self.info.remote_id, payload)
            self.dev._io_manager.send(msg, self.info)
            if self._receive([_c.OKAY]) == _c.CLSE:
                raise DeviceError("the device closed the stream")

    def recv_exact(self, n: int) -> bytes:
        while len(self._inbox) < n:
            if self.closed:
                raise EOFError(f"stream closed after {len(self._inbox)} of {n} bytes")
            self._receive([_c.WRTE])
        out = bytes(self._inbox[:n])
        del self._inbox[:n]
        return out

    def read_all(self) -> bytes:
        while not self.closed:
            self._receive([_c.WRTE])
        out = bytes(self._inbox)
        self._inbox.clear()
        return out

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.dev._io_manager.send(_AdbMessage(_c.CLSE, self.info.local_id, self.info.remote_id), self.info)


class AdbDirectDevice:
    """A phone reached at HOST:PORT over adb's TCP transport, without an adb server."""

    transport = "adb-direct"

    def __init__(
        self,
        address: str,
        *,
        adbkey: str | Path | None = None,
        workdir: str = ac.WORKDIR,
        connect_timeout: float = 10.0,
        auth_timeout: float = 30.0,
        reconnect_timeout: float = 30.0,
        io_timeout: float = IO_TIMEOUT,
    ) -> None:
        if _AdbShellDevice is None:
            raise DeviceError("adb-direct needs adb-shell: pip install 'slmdeploy[devices]'")
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise DeviceError(f"adb-direct needs HOST:PORT, got {address!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self.address = address
        self.serial = address
        self.spec = f"adb-direct:{address}"
        self.workdir = workdir
        self.connect_timeout = connect_timeout
        self.auth_timeout = auth_timeout
        self.reconnect_timeout = reconnect_timeout
        self.io_timeout = io_timeout
        self._signer = load_signer(adbkey)
        self._lock = threading.RLock()
        self._dev = None
        self._connect(time.monotonic())  # first contact: one try, fail fast

    # -- connection --------------------------------------------------------------------
    def _connect(self, deadline: float) -> None:
        """Connect and authenticate; a phone that refuses (rebooting) is retried until ``deadline``."""
        last: Exception | None = None
        while True:
            transport = _Transport(self.host, self.port)
            dev = _AdbShellDevice(transport, default_transport_timeout_s=self.connect_timeout)
            dev._io_manager = _IOManager(transport)
            try:
                dev.connect(rsa_keys=[self._signer], transport_timeout_s=self.connect_timeout,
                            auth_timeout_s=self.auth_timeout, read_timeout_s=self.connect_timeout)
                self._remove_stale_scratch(dev)
                self._dev = dev
                return
            except _x.DeviceAuthError as err:
                dev.close()
                raise DeviceError(f"{self.spec} refused the key {default_key_path()}: {err}") from None
            except Exception as err:  # refused, reset, timed out: the phone may be rebooting
                dev.close()
                last = err
            if time.monotonic() + 0.3 >= deadline:
                break
            time.sleep(0.3)
        hint = "authorize this computer on the phone" if isinstance(last, (_x.TcpTimeoutException, TimeoutError)) else \
            "is wireless debugging on (adb tcpip 5555) and the address right?"
        raise DeviceError(f"cannot connect to {self.spec}: {last or 'no answer'} ({hint})")

    def _remove_stale_scratch(self, dev) -> None:
        """Stderr scratch files of commands a timeout or a lost link cut off (``V1Command``).

        A fresh connection is when such a leftover can exist: the last one died with it.
        """
        line = ac.stale_scratch_cleanup()
        _DirectStream(dev, f"exec:{line}", self.connect_timeout, time.monotonic() + self.connect_timeout).read_all()

    def _call(self, what: str, fn: Callable[[object], T]) -> T:
        """Run ``fn(adb_shell_device)``; any transport failure discards the connection."""
        with self._lock:
            if self._dev is None:
                self._connect(time.monotonic() + self.reconnect_timeout)
            try:
                return fn(self._dev)
            except DeviceError:
                self._discard()
                raise
            except (TimeoutError, _x.TcpTimeoutException, _x.AdbTimeoutError):
                self._discard()
                raise TimeoutError(what) from None
            except EOFError:
                self._discard()
                raise DeviceError(f"{self.spec}: the stream closed during {what}") from None
            except Exception as err:  # OSError, protocol errors: the link is gone or garbled
                self._discard()
                raise DeviceError(f"{self.spec}: connection lost during {what}: {err or type(err).__name__}") from None
            except BaseException:  # interrupted mid-message (Ctrl-C): the stream cannot be trusted, nor reused
                self._discard()
                raise

    def _discard(self) -> None:
        if self._dev is not None:
            try:
                self._dev.close()
            except Exception:
                pass
            self._dev = None

    # -- Device protocol ---------------------------------------------------------------------
    def shell(self, cmd: str | Sequence[str], timeout: float | None = None) -> ShellResult:
        line = quote_cmd(cmd)
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        what = f"`{ac.describe(line)}` on {self.spec}"
        wrapped = ac.V1Command(line)

        def run(dev) -> bytes:
            stream = _DirectStream(dev, f"exec:{wrapped.line}", timeout, deadline)
            return stream.read_all()

        try:
            raw = self._call(what, run)
        except TimeoutError:
            raise DeviceError(f"timed out after {timeout:.0f} s: {what} (the command was stopped)") from None
        return wrapped.parse(raw, what)

    def push(self, local: Path, remote: str, progress: ProgressFn | None = None) -> None:
        self._sync(f"push of {remote}", lambda s: ac.sync_send(s, Path(local), remote, progress))

    def pull(self, remote: str, local: Path, progress: ProgressFn | None = None) -> None:
        ac.pull_atomically(Path(local), lambda out: self._sync(f"pull of {remote}",
                                                                lambda s: ac.sync_recv(s, remote, out, progress)))

    def _sync(self, what: str, work) -> None:
        def run(dev) -> None:
            stream = _DirectStream(dev, "sync:", self.io_timeout)
            work(stream)
            ac.sync_quit(stream)
            stream.close()

        try:
            self._call(what, run)
        except TimeoutError:
            raise DeviceError(f"{self.spec}: {what} stalled for {self.io_timeout:.0f} s") from None

    def info(self) -> DeviceInfo:
        from slmdeploy.devices.android import android_info

        return android_info(self, serial=self.serial)

    def lock(self):
        return device_lock(self.spec)

    def close(self) -> None:
        with self._lock:
            self._discard()
