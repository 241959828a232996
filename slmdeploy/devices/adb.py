"""``adb:SERIAL``: a phone through the adb server (the default; labs and device farms).

The adb server (``adb start-server``; started on demand) is found at
``ANDROID_ADB_SERVER_HOST``/``ANDROID_ADB_SERVER_PORT`` (default 127.0.0.1:5037) or
the ``host``/``port`` options. adbutils lists devices, connects network devices and
opens the server connection; on it this module speaks the services directly:

* ``shell,v2,raw:`` (Android 7+): exit status and separate stderr from the device;
  older phones get ``exec:`` with the marker wrapper of ``adb_common.V1Command``;
* ``sync:`` SEND/RECV in 64 KiB packets with progress and bounded memory.

Every call has a deadline: a command past its timeout has its stream closed (adbd then
kills it) and raises ``DeviceError``. A device that went away (cable, Wi-Fi, reboot) is
reconnected (``adb connect`` for HOST:PORT serials) before the next call.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Sequence

from slmdeploy.devices import adb_common as ac
from slmdeploy.devices.base import DeviceInfo, ProgressFn, ShellResult, quote_cmd
from slmdeploy.devices.lock import device_lock
from slmdeploy.errors import DeviceError

DEFAULT_TIMEOUT = 300.0  # shell commands without an explicit timeout
IO_TIMEOUT = 60.0  # push/pull: longest silence tolerated on the link
_NETWORK_SERIAL = re.compile(r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d+$")


def server_address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    host = host or os.environ.get("ANDROID_ADB_SERVER_HOST") or "127.0.0.1"
    port = int(port or os.environ.get("ANDROID_ADB_SERVER_PORT") or 5037)
    return host, port


def _client(host: str, port: int, timeout: float):
    try:
        import adbutils
    except ImportError as err:  # pragma: no cover - an optional dependency
        raise DeviceError("the adb transport needs adbutils: pip install 'slmdeploy[devices]'") from err
    return adbutils.AdbClient(host=host, port=port, socket_timeout=timeout)


class _ServerStream:
    """One service on one adb-server connection, as an ``adb_common.ByteStream``."""

    batch = 1 << 20  # bytes per socket write of a push: fewer calls, memory still bounded

    def __init__(self, sock: socket.socket, idle_timeout: float, deadline: float | None = None) -> None:
        self.sock = sock
        self.idle_timeout = idle_timeout
        self.deadline = deadline

    def _arm(self) -> None:
        timeout = self.idle_timeout
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0:
                raise TimeoutError("deadline passed")
        self.sock.settimeout(timeout)

    def sendall(self, data: bytes | memoryview) -> None:
        self._arm()
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise
        except OSError as err:
            raise DeviceError(f"connection to the adb server broke: {err}") from None

    def recv_exact(self, n: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            self._arm()
            try:
                k = self.sock.recv_into(view[got:])
            except TimeoutError:
                raise
            except OSError as err:
                raise DeviceError(f"connection to the adb server broke: {err}") from None
            if k == 0:
                raise EOFError(f"service closed after {got} of {n} bytes")
            got += k
        return bytes(buf)

    def read_all(self) -> bytes:
        chunks = []
        while True:
            self._arm()
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                raise
            except OSError as err:
                raise DeviceError(f"connection to the adb server broke: {err}") from None
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class AdbDevice:
    """A phone (or emulated phone) known to the adb server."""

    transport = "adb"

    def __init__(
        self,
        serial: str,
        *,
        host: str | None = None,
        port: int | None = None,
        workdir: str = ac.WORKDIR,
        connect_timeout: float = 10.0,
        reconnect_timeout: float = 30.0,
        io_timeout: float = IO_TIMEOUT,
    ) -> None:
        if not serial:
            raise DeviceError("adb needs a serial: adb:SERIAL (see `adb devices`).")
        self.serial = serial
        self.spec = f"adb:{serial}"
        self.workdir = workdir
        self.server = server_address(host, port)
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.io_timeout = io_timeout
        self._client = _client(*self.server, connect_timeout)
        self._features: set[str] | None = None
        self._ensure_online(connect_timeout, reappear=False)

    # -- connection --------------------------------------------------------------------
    def _state(self) -> str | None:
        try:
            for entry in self._client.list():
                if entry.serial == self.serial:
                    return entry.state
        except Exception as err:  # adbutils raises its own errors and OSError alike
            raise DeviceError(
                f"cannot reach the adb server at {self.server[0]}:{self.server[1]}: {err}. "
                "Start it with `adb start-server` (ANDROID_ADB_SERVER_PORT selects its port)."
            ) from None
        return None

    def _ensure_online(self, timeout: float, reappear: bool = True) -> None:
        """Wait until the server lists this device as 'device'; `adb connect` network serials.

        Without ``reappear``, a USB serial the server does not list fails at once (a typo
        does not become a device by waiting; a phone that just rebooted does).
        """
        deadline = time.monotonic() + timeout
        network = bool(_NETWORK_SERIAL.match(self.serial))
        nudged = False
        while (state := self._state()) != "device":
            # `adb connect`: a network serial the server forgot needs it; an offline one gets one nudge
            if network and (state is None or (state == "offline" and not nudged)):
                try:
                    self._client.connect(self.serial, timeout=max(1.0, deadline - time.monotonic()))
                except Exception:  # not reachable yet (rebooting): try again until the deadline
                    pass
                nudged = True
            if time.monotonic() >= deadline or (state is None and not network and not reappear):
                break
            time.sleep(0.2)
        if state == "device":
            return
        if state == "unauthorized":
            raise DeviceError(f"{self.spec} is unauthorized: accept the 'Allow USB debugging' prompt on the phone.")
        seen = ", ".join(f"{d.serial} ({d.state})" for d in self._client.list()) or "none"
        raise DeviceError(
            f"{self.spec} is {'in state ' + state if state else 'not connected'} on the adb server "
            f"{self.server[0]}:{self.server[1]} (devices: {seen}). Check the cable or `adb connect HOST:PORT`."
        )

    def _open(self, service: str, idle_timeout: float, deadline: float | None = None) -> _ServerStream:
        """A stream to ``service`` on the device; reconnects once if the device went away."""
        for attempt in (0, 1):
            try:
                conn = self._client.make_connection(timeout=self.connect_timeout)
            except Exception as err:
                raise DeviceError(f"cannot reach the adb server at {self.server[0]}:{self.server[1]}: {err}") from None
            try:
                conn.send_command(f"host:transport:{self.serial}")
                conn.check_okay()
                conn.send_command(service)
                conn.check_okay()
            except Exception as err:
                conn.close()
                if attempt == 0 and _looks_gone(str(err)):
                    self._features = None
                    self._ensure_online(self.reconnect_timeout)
                    continue
                raise DeviceError(f"{self.spec}: cannot open {service.split(':')[0]}: {err}") from None
            sock = conn.conn
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return _ServerStream(sock, idle_timeout, deadline)
        raise AssertionError("unreachable")

    def features(self) -> set[str]:
        """What the device's adbd supports (``shell_v2`` ...), as the server reports it."""
        if self._features is None:
            for attempt in (0, 1):
                try:
                    with self._client.make_connection(timeout=self.connect_timeout) as conn:
                        conn.send_command(f"host-serial:{self.serial}:features")
                        conn.check_okay()
                        self._features = set(conn.read_string_block().split(","))
                        break
                except Exception as err:
                    if attempt == 0 and _looks_gone(str(err)):
                        self._ensure_online(self.reconnect_timeout)
                        continue
                    raise DeviceError(f"{self.spec}: cannot read its features: {err}") from None
        return self._features

    # -- Device protocol ---------------------------------------------------------------------
    def shell(self, cmd: str | Sequence[str], timeout: float | None = None) -> ShellResult:
        line = quote_cmd(cmd)
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        what = f"`{ac.describe(line)}` on {self.spec}"
        v2 = "shell_v2" in self.features()
        v1 = None if v2 else ac.V1Command(line)
        stream = self._open(f"shell,v2,raw:{line}" if v2 else f"exec:{v1.line}", timeout, deadline)
        try:
            if v2:
                stream.sendall(ac.v2_packet(ac.V2_CLOSE_STDIN))
                return ac.read_v2(stream, deadline, what)
            return v1.parse(stream.read_all(), what)
        except (TimeoutError, EOFError) as err:
            if isinstance(err, EOFError):
                raise DeviceError(f"connection lost before {what} finished") from None
            raise DeviceError(f"timed out after {timeout:.0f} s: {what} (the command was stopped)") from None
        finally:
            stream.close()

    def push(self, local: Path, remote: str, progress: ProgressFn | None = None) -> None:
        self._sync(remote, lambda s: ac.sync_send(s, Path(local), remote, progress))

    def pull(self, remote: str, local: Path, progress: ProgressFn | None = None) -> None:
        ac.pull_atomically(Path(local), lambda out: self._sync(remote, lambda s: ac.sync_recv(s, remote, out, progress)))

    def _sync(self, remote: str, work) -> None:
        stream = self._open("sync:", self.io_timeout)
        try:
            work(stream)
            ac.sync_quit(stream)
        except TimeoutError:
            raise DeviceError(f"{self.spec}: transfer of {remote} stalled for {self.io_timeout:.0f} s") from None
        except EOFError:
            raise DeviceError(f"{self.spec}: connection lost during the transfer of {remote}") from None
        finally:
            stream.close()

    def info(self) -> DeviceInfo:
        from slmdeploy.devices.android import android_info

        return android_info(self, serial=self.serial)

    def lock(self):
        return device_lock(self.spec)

    def close(self) -> None:
        pass  # every call opens its own server connection


def _looks_gone(message: str) -> bool:
    message = message.lower()
    return any(word in message for word in ("not found", "offline", "no devices", "closed", "connect"))
