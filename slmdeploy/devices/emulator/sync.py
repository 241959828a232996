"""The ``sync:`` service (adb push/pull/ls), following adbd's file_sync_service.

Requests are ``[id:4][length:4 LE][path]``; the WRTE boundaries carry no meaning, so
everything is parsed from a byte buffer. Like adbd, a push writes the file under
its final name (creating parent directories), removes it again if the transfer
fails, and ends the sync session after any FAIL.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from slmdeploy.devices.emulator.stream import Stream, StreamClosed, StreamReader

if TYPE_CHECKING:
    from slmdeploy.devices.emulator.connection import Connection
    from slmdeploy.devices.emulator.daemon import EmulatedPhone

log = logging.getLogger(__name__)

REQUEST = struct.Struct("<4sI")  # also DATA/DONE/OKAY/FAIL headers
STAT_V1 = struct.Struct("<4sIII")  # id, mode, size, mtime
STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")  # id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime
DENT_V1 = struct.Struct("<4sIIII")  # id, mode, size, mtime, namelen
DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")  # stat_v2 fields + namelen
SYNC_DATA_MAX = 64 * 1024
MAX_PATH = 1024
FLUSH_AT = 256 * 1024


class SyncFailed(Exception):
    """Ends the session after a FAIL has been sent."""


class SyncSession:
    """One ``sync:`` stream."""

    def __init__(self, phone: EmulatedPhone, conn: Connection, stream: Stream) -> None:
        self.phone = phone
        self.conn = conn
        self.stream = stream
        self.reader = StreamReader(stream)
        self._out = bytearray()

    def run(self) -> None:
        handlers = {
            b"STAT": self._lstat_v1, b"STA2": self._stat_v2, b"LST2": self._stat_v2,
            b"LIST": self._list, b"LIS2": self._list, b"SEND": self._send, b"RECV": self._recv,
        }
        try:
            while True:
                ident, length = REQUEST.unpack(self.reader.read_exact(REQUEST.size))
                if length > MAX_PATH:
                    self._fail("path too long")
                path = self.reader.read_exact(length).decode(errors="surrogateescape")
                log.debug("sync %s %r", ident, path)
                if ident == b"QUIT":
                    break
                handler = handlers.get(ident)
                if handler is None:
                    self._fail(f"unknown command {int.from_bytes(ident, 'little'):08x}")
                handler(ident, path)
                self._flush()
        except (EOFError, StreamClosed, SyncFailed):
            pass

    # -- output -----------------------------------------------------------------------
    def _emit(self, data: bytes) -> None:
        self._out += data
        if len(self._out) >= FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        if self._out:
            data, self._out = bytes(self._out), bytearray()
            self.stream.write(data)

    def _fail(self, reason: str) -> NoReturn:
        self._emit(REQUEST.pack(b"FAIL", len(reason.encode())) + reason.encode())
        self._flush()
        raise SyncFailed(reason)

    def _fail_errno(self, reason: str, exc: OSError) -> NoReturn:
        self._fail(f"{reason}: {os.strerror(exc.errno or errno.EIO)}")

    # -- requests -----------------------------------------------------------------------
    def _lstat_v1(self, _ident: bytes, path: str) -> None:
        try:
            st = os.lstat(self.phone.sandbox.host_path(path))
            self._emit(STAT_V1.pack(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime)))
        except OSError:
            self._emit(STAT_V1.pack(b"STAT", 0, 0, 0))

    def _stat_v2(self, ident: bytes, path: str) -> None:
        try:
            st = os.stat(self.phone.sandbox.host_path(path), follow_symlinks=ident == b"STA2")
        except OSError as exc:
            self._emit(STAT_V2.pack(ident, exc.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            return
        self._emit(STAT_V2.pack(ident, 0, *_stat_fields(st)))

    def _list(self, ident: bytes, path: str) -> None:
        v2 = ident == b"LIS2"
        host = self.phone.sandbox.host_path(path)
        try:
            names = [".", "..", *sorted(os.listdir(host))]
        except OSError:
            names = []
        for name in names:
            raw = name.encode(errors="surrogateescape")
            try:
                st = os.lstat(host / name)
            except OSError as exc:
                if v2:
                    self._emit(DENT_V2.pack(b"DNT2", exc.errno or errno.EIO, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, len(raw)) + raw)
                continue
            if v2:
                self._emit(DENT_V2.pack(b"DNT2", 0, *_stat_fields(st), len(raw)) + raw)
            else:
                self._emit(DENT_V1.pack(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(raw)) + raw)
        self._emit(b"DONE" + bytes((DENT_V2 if v2 else DENT_V1).size - 4))

    def _recv(self, _ident: bytes, path: str) -> None:
        try:
            f = open(self.phone.sandbox.host_path(path), "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            self._fail_errno("open failed", exc)
        with f:
            while True:
                try:
                    chunk = f.read(SYNC_DATA_MAX)
                except OSError as exc:
                    self._fail_errno("read failed", exc)
                if not chunk:
                    break
                self._emit(REQUEST.pack(b"DATA", len(chunk)) + chunk)
        self._emit(REQUEST.pack(b"DONE", 0))

    def _send(self, _ident: bytes, spec: str) -> None:
        path, comma, mode_text = spec.rpartition(",")
        if not comma:
            self._fail("missing , in ID_SEND_V1")
        try:
            mode = _parse_mode(mode_text)
        except ValueError:
            self._fail("bad mode")
        host = self.phone.sandbox.host_path(path)
        try:
            st: os.stat_result | None = os.lstat(host)
        except OSError:
            st = None
        do_unlink = st is None or stat.S_ISREG(st.st_mode) or (stat.S_ISLNK(st.st_mode) and not stat.S_ISLNK(mode))
        if do_unlink and st is not None:
            _unlink(host)
        if stat.S_ISLNK(mode):
            self._send_link(host)
            return
        mode &= 0o777
        mode |= (mode >> 3) & 0o070
        mode |= (mode >> 3) & 0o007
        try:
            fd = self._create(path, host, mode)
        except OSError as exc:
            self._drain_then_fail(f"couldn't create file: {os.strerror(exc.errno or errno.EIO)}", host, do_unlink)
        try:
            mtime = self._receive_data(path, fd, host, do_unlink)
        except (EOFError, StreamClosed):
            if do_unlink:
                _unlink(host)  # adbd: a transfer cut short leaves no file behind
            raise
        finally:
            os.close(fd)
        os.utime(host, (mtime, mtime), follow_symlinks=False)
        self._emit(REQUEST.pack(b"OKAY", 0))

    def _create(self, path: str, host: Path, mode: int) -> int:
        if not self.phone.sandbox.is_writable(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(host, flags, mode)
        except FileNotFoundError:
            host.parent.mkdir(mode=0o775, parents=True, exist_ok=True)
            fd = os.open(host, flags, mode)
        except FileExistsError:
            fd = os.open(host, os.O_WRONLY | os.O_CLOEXEC)
        os.fchmod(fd, mode)
        return fd

    def _receive_data(self, path: str, fd: int, host: Path, do_unlink: bool) -> int:
        """Write DATA chunks until DONE; returns DONE's mtime. Enforces quota and drop faults."""
        quota = self.phone.faults.data_quota_bytes if self.phone.sandbox.in_data_area(path) else None
        used = self.phone.sandbox.data_usage() if quota is not None else 0
        drop_after = self.phone.faults.take_push_drop()
        received = 0
        while True:
            ident, size = REQUEST.unpack(self.reader.read_exact(REQUEST.size))
            if ident == b"DONE":
                return size
            if ident != b"DATA":
                self._fail("invalid data message")
            if size > SYNC_DATA_MAX:
                self._fail("oversize data message")
            data = self.reader.read_exact(size)
            if drop_after is not None and received + size >= drop_after:
                os.write(fd, data[: drop_after - received])
                log.warning("fault: dropping the transport after %d bytes of %s", drop_after, path)
                if do_unlink:
                    _unlink(host)  # before the drop, so the client never sees the file
                self.conn.drop()
                raise StreamClosed("dropped by fault injection")
            if quota is not None and used + received + size > quota:
                self._drain_then_fail(f"write failed: {os.strerror(errno.ENOSPC)}", host, do_unlink)
            try:
                os.write(fd, data)
            except OSError as exc:
                self._drain_then_fail(f"write failed: {os.strerror(exc.errno or errno.EIO)}", host, do_unlink)
            received += size

    def _drain_then_fail(self, reason: str, host: Path, do_unlink: bool) -> NoReturn:
        """adbd: send FAIL, swallow the rest of the file up to DONE, remove what was written."""
        try:
            self._emit(REQUEST.pack(b"FAIL", len(reason.encode())) + reason.encode())
            self._flush()
            while True:
                ident, size = REQUEST.unpack(self.reader.read_exact(REQUEST.size))
                if ident != b"DATA" or size > SYNC_DATA_MAX:
                    break
                self.reader.read_exact(size)
        except (EOFError, StreamClosed):
            pass
        finally:
            if do_unlink:
                _unlink(host)
        raise SyncFailed(reason)

    def _send_link(self, host: Path) -> None:
        ident, size = REQUEST.unpack(self.reader.read_exact(REQUEST.size))
        if ident != b"DATA" or size > SYNC_DATA_MAX:
            self._fail("invalid data message: expected ID_DATA")
        target = self.reader.read_exact(size).rstrip(b"\0").decode(errors="surrogateescape")
        try:
            current = os.readlink(host) if host.is_symlink() else None
            if current != target:  # like adbd: leave an identical link alone, else replace it
                _unlink(host)
                host.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, host)
        except OSError as exc:
            self._fail_errno("symlink failed", exc)
        ident, mtime = REQUEST.unpack(self.reader.read_exact(REQUEST.size))
        if ident != b"DONE":
            self._fail("invalid data message: expected ID_DONE")
        os.utime(host, (mtime, mtime), follow_symlinks=False)
        self._emit(REQUEST.pack(b"OKAY", 0))


def _stat_fields(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
            int(st.st_atime), int(st.st_mtime), int(st.st_ctime))


def _parse_mode(text: str) -> int:
    """strtoul(text, 0): decimal, 0x hex or leading-0 octal."""
    text = text.strip()
    if text.lower().startswith("0x"):
        return int(text, 16)
    if len(text) > 1 and text.startswith("0"):
        return int(text, 8)
    return int(text, 10)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
