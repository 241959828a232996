"""Test helpers: the real adb server on a private port, and a minimal raw client.

``AdbServer`` runs the adb binary shipped in the adbutils wheel with a private
HOME (so ``~/.android/adbkey`` is a throw-away key) on a free port, with USB,
mDNS and emulator-port scanning off so it only ever talks to loopback devices
it is told about. ``RawAdbClient`` speaks the wire protocol directly, for tests
that need byte-level control (odd WRTE splits) no real client produces.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from slmdeploy.devices.emulator import protocol as p
from slmdeploy.devices.emulator.auth import encode_public_key, sign_token


def find_adb() -> Path:
    """The adb binary from the adbutils wheel (``adbutils/binaries/adb``), else adbutils' choice."""
    import adbutils

    candidate = Path(adbutils.__file__).parent / "binaries" / ("adb.exe" if os.name == "nt" else "adb")
    if not candidate.is_file():
        candidate = Path(adbutils.adb_path())
    if not os.access(candidate, os.X_OK):
        candidate.chmod(candidate.stat().st_mode | 0o111)
    return candidate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AdbServer:
    """A private adb server; ``adb(*args)`` runs the real client against it."""

    def __init__(self, home: Path | None = None, port: int | None = None, adb: Path | None = None) -> None:
        self.adb_path = adb or find_adb()
        self._own_home = home is None
        self.home = home or Path(tempfile.mkdtemp(prefix="slmdeploy-adb-home-"))
        self.port = port or free_port()
        android = self.home / ".android"
        android.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ADB_", "ANDROID_"))}
        env.update({
            "HOME": str(self.home),
            "ANDROID_USER_HOME": str(android),
            "ANDROID_ADB_SERVER_PORT": str(self.port),
            "ADB_USB": "0",  # no USB scan: 3 s faster start, and no real phones picked up
            "ADB_MDNS": "0",
            "ADB_EMU": "0",  # no probing of emulator ports 5555-5585
        })
        self.env = env

    @property
    def key_path(self) -> Path:
        return self.home / ".android" / "adbkey"

    @property
    def public_key(self) -> str:
        """The server's adbkey.pub line (exists once the server has started)."""
        return (self.key_path.parent / "adbkey.pub").read_text().strip()

    def adb(self, *args: str, timeout: float = 60, input: bytes | str | None = None,
            check: bool = False, text: bool = True) -> subprocess.CompletedProcess:
        """Run ``adb -P PORT args...``; output captured (str by default)."""
        if isinstance(input, str) and not text:
            input = input.encode()
        return subprocess.run(
            [str(self.adb_path), "-P", str(self.port), *args], env=self.env, capture_output=True,
            timeout=timeout, input=input, check=check, text=text,
        )

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([str(self.adb_path), "-P", str(self.port), *args], env=self.env, **kwargs)

    def start(self) -> AdbServer:
        self.adb("start-server", check=True, timeout=30)
        return self

    def stop(self) -> None:
        self.adb("kill-server", timeout=30)
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> AdbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def state(self, serial: str) -> str | None:
        """The serial's state in ``adb devices`` (device, offline, unauthorized), or None."""
        for line in self.adb("devices").stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == serial:
                return fields[1]
        return None

    def wait_for_state(self, serial: str, state: str = "device", timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while (current := self.state(serial)) != state:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{serial} is {current!r}, not {state!r}: {self.adb('devices', '-l').stdout}")
            time.sleep(0.05)

    def connect(self, serial: str, timeout: float = 20) -> subprocess.CompletedProcess:
        """``adb connect`` and wait until the device is online.

        With a key the phone has not seen, adb first reports "failed to authenticate"
        (as with a real phone showing its dialog); the phone then accepts or not.
        """
        result = self.adb("connect", serial, timeout=timeout)
        self.wait_for_state(serial, "device", timeout)
        return result

    def disconnect(self, serial: str) -> None:
        self.adb("disconnect", serial, timeout=30)


class RawAdbClient:
    """Bare adb host side over TCP, one stream at a time; for protocol-level tests."""

    def __init__(self, host: str, port: int, key: rsa.RSAPrivateKey | None = None, timeout: float = 10) -> None:
        self.key = key
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.banner = ""
        self._next_id = 100

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        self.sock.sendall(p.pack(p.Message(command, arg0, arg1, data), with_checksum=False))

    def recv(self) -> p.Message:
        return p.read_message(self.sock, verify_checksum=False)

    def connect(self) -> str:
        """CNXN (+ AUTH with ``key`` if asked); returns the device banner."""
        self.send(p.A_CNXN, p.A_VERSION, p.MAX_ACCEPTED_PAYLOAD, b"host::\0")
        msg = self.recv()
        if msg.command == p.A_AUTH:
            if self.key is None:
                raise PermissionError("device wants AUTH and no key was given")
            self.send(p.A_AUTH, p.AUTH_SIGNATURE, 0, sign_token(self.key, msg.data))
            msg = self.recv()
            if msg.command == p.A_AUTH:  # key unknown: offer it, as adb does
                pub = encode_public_key(self.key.public_key()).encode() + b"\0"
                self.send(p.A_AUTH, p.AUTH_RSAPUBLICKEY, 0, pub)
                msg = self.recv()
        if msg.command != p.A_CNXN:
            raise p.ProtocolError(f"expected CNXN, got {msg}")
        self.banner = msg.data.decode()
        return self.banner

    def open(self, service: str) -> tuple[int, int]:
        """(local id, remote id) of a new stream; ConnectionRefusedError if the device closes it."""
        self._next_id += 1
        local = self._next_id
        self.send(p.A_OPEN, local, 0, service.encode() + b"\0")
        msg = self.recv()
        if msg.command == p.A_CLSE:
            raise ConnectionRefusedError(f"device closed {service!r}")
        if msg.command != p.A_OKAY:
            raise p.ProtocolError(f"expected OKAY, got {msg}")
        return local, msg.arg0

    def write(self, ids: tuple[int, int], data: bytes) -> None:
        """One WRTE, then wait for its OKAY (answering device WRTEs would be the caller's job)."""
        self.send(p.A_WRTE, ids[0], ids[1], data)
        msg = self.recv()
        if msg.command != p.A_OKAY:
            raise p.ProtocolError(f"expected OKAY, got {msg}")

    def read(self, ids: tuple[int, int], nbytes: int | None = None) -> bytes:
        """Device WRTE payloads (each OKAYed) until ``nbytes`` arrived, or else until CLSE."""
        out = bytearray()
        while nbytes is None or len(out) < nbytes:
            msg = self.recv()
            if msg.command == p.A_WRTE:
                out += msg.data
                self.send(p.A_OKAY, ids[0], ids[1])
            elif msg.command == p.A_CLSE:
                break
        return bytes(out)

    def close(self) -> None:
        self.sock.close()
