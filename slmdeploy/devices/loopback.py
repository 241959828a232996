"""A real OpenSSH server on loopback, and a cuttable TCP relay, for tests and benchmarks.

``LoopbackSshd`` runs the system's ``sshd`` on 127.0.0.1 with a throw-away host key and
user key (nothing outside its directory is touched; only the current user may log in,
and only by that key). The adb counterpart is ``slmdeploy.devices.emulator.testing.AdbServer``.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from slmdeploy.devices.emulator.testing import free_port
from slmdeploy.errors import DeviceError

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DeviceError(f"{what} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise DeviceError(f"{what} is not listening on 127.0.0.1:{port} after {timeout:.0f} s")


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "slmdeploy-loopback", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)


class LoopbackSshd:
    """``sshd -D -e`` on 127.0.0.1:PORT; ``address`` and ``key`` are what SshDevice needs."""

    def __init__(self, root: str | Path, port: int = 0, sshd: str | None = None) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.sshd = sshd or next((p for p in SSHD_CANDIDATES if Path(p).exists()), None) or shutil.which("sshd")
        self.proc: subprocess.Popen | None = None
        self.key = self.root / "id_ed25519"
        self.host_key = self.root / "ssh_host_ed25519_key"
        self.log = self.root / "sshd.log"

    @property
    def address(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def start(self) -> "LoopbackSshd":
        if not self.sshd:
            raise DeviceError("no sshd here: install openssh-server (scripts/install-system-deps.sh).")
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.host_key.exists():
            _keygen(self.host_key)
        if not self.key.exists():
            _keygen(self.key)
        authorized = self.root / "authorized_keys"
        authorized.write_text(self.key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        config = self.root / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\n"
            f"Port {self.port}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\n"
            f"AllowUsers {self.user}\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "Subsystem sftp internal-sftp\n"
            "MaxStartups 50\n"
            "MaxSessions 50\n"
            "LogLevel ERROR\n"
            # bash sources ~/.bashrc for commands run by sshd unless it is a nested shell;
            # a heavy rc file (pyenv, conda) would otherwise add ~0.1 s to every command.
            "SetEnv SHLVL=1\n"
        )
        self.proc = subprocess.Popen(
            [self.sshd, "-f", str(config), "-p", str(self.port), "-D", "-e"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
        )
        _wait_port(self.port, self.proc, "sshd")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "LoopbackSshd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _splice_all(src: socket.socket, dst: socket.socket) -> None:
    """Moves bytes src → dst through a kernel pipe until EOF: a network link copies no bytes
    through Python, so the relay is not what a transfer benchmark measures."""
    read_end, write_end = os.pipe()
    try:
        try:
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            pass  # the default 64 KiB pipe still works, just with more calls
        while moved := os.splice(src.fileno(), write_end, _PIPE_BYTES):
            while moved:
                moved -= os.splice(read_end, dst.fileno(), moved)
    finally:
        os.close(read_end)
        os.close(write_end)


_PIPE_BYTES = 1 << 20


def _quiet(call, *args) -> None:
    try:
        call(*args)
    except OSError:
        pass


class TcpProxy:
    """A loopback TCP relay to ``target_port`` whose ``cut()`` drops every relayed connection.

    Stands in for the network between this host and a board: ``cut()`` is the Wi-Fi going
    away mid-run (both ends see the connection reset); new connections work again after.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cuts = 0
        threading.Thread(target=self._accept, name=f"proxy-{self.port}", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)  # a link may be silent for as long as a benchmark runs
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            if hasattr(os, "splice"):
                _splice_all(src, dst)
            else:
                while data := src.recv(1 << 16):
                    dst.sendall(data)
        except OSError:  # reset or cut: the whole connection goes
            for sock in (src, dst):
                _quiet(sock.shutdown, socket.SHUT_RDWR)
            return
        _quiet(dst.shutdown, socket.SHUT_WR)  # EOF: pass the half-close on, the other way still flows

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
            self.cuts += 1
        for sock in sockets:  # shutdown (not just close) wakes the pump blocked in recv
            for step in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
                try:
                    step()
                except OSError:
                    pass

    def close(self) -> None:
        self._listener.close()
        self.cut()


class LoopbackLab:
    """An emulated phone behind a private adb server, and an OpenSSH "board" behind a relay.

    Everything listens on 127.0.0.1 only. Used by the device tests, the end-to-end tests and
    ``benchmarks/push_throughput.py``; enter it with ``with LoopbackLab(root) as lab``.
    While entered, ``ANDROID_ADB_SERVER_PORT`` points adb clients (and ``AdbDevice``) at the
    lab's server and ``ANDROID_USER_HOME`` keeps adb keys under ``root``.
    """

    def __init__(self, root: str | Path, profile="pixel8") -> None:
        self.root = Path(root)
        self.profile = profile
        self._saved_env: dict[str, str | None] = {}
        self.adb_server = self.phone = self.sshd = self.ssh_link = None

    def __enter__(self) -> "LoopbackLab":
        from slmdeploy.devices.emulator import EmulatedPhone
        from slmdeploy.devices.emulator.testing import AdbServer

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.adb_server = AdbServer(home=self.root / "adb-home").start()
            self._setenv(ANDROID_ADB_SERVER_PORT=str(self.adb_server.port),
                         ANDROID_USER_HOME=str(self.root / "android"))
            self.phone = EmulatedPhone(self.profile, root=self.root / "phone").start()
            self.adb_server.connect(self.phone.serial)
            self.sshd = LoopbackSshd(self.root / "sshd").start()
            self.ssh_link = TcpProxy(self.sshd.port)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _setenv(self, **values: str) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def __exit__(self, *exc: object) -> None:
        for thing in (self.ssh_link, self.sshd, self.phone, self.adb_server):
            if thing is not None:
                (thing.close if isinstance(thing, TcpProxy) else thing.stop)()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    @property
    def ssh_address(self) -> str:
        """The board's address through the relay (so ``cut`` can drop it)."""
        return f"{self.sshd.user}@127.0.0.1:{self.ssh_link.port}"

    def open(self, transport: str, workdir: str | Path | None = None):
        """A connected device: ``adb``/``adb-direct`` to the phone, ``ssh`` to the board.

        The board is this host: give ssh a ``workdir`` so nothing lands in ~/.cache.
        """
        from slmdeploy.devices import open_device
        from slmdeploy.devices.ssh import SshDevice

        if transport == "ssh":
            return SshDevice(self.ssh_address, key_filename=self.sshd.key,
                             workdir=str(workdir or self.root / "board-workdir"))
        return open_device(f"{transport}:{self.phone.serial}")

    def cut(self, device) -> None:
        """Drop ``device``'s link: the phone's transports (cable pulled) or the board's TCP path."""
        if device.transport == "ssh":
            self.ssh_link.cut()
        else:
            self.phone.drop_connections()


class CorruptingLink:
    """A device whose pushes land with one byte flipped: a bad cable or bad flash, on demand.

    Everything else is the wrapped device's; ``bench``/``deploy_file`` accept it as a device.
    """

    def __init__(self, device, offset: int = 1000) -> None:
        self.device = device
        self.offset = offset
        self.spec, self.workdir, self.transport = device.spec, device.workdir, device.transport
        self.corrupted: list[str] = []

    def push(self, local, remote, progress=None) -> None:
        self.device.push(local, remote, progress)
        q = shlex.quote(remote)
        self.device.shell(f"printf X | dd of={q} bs=1 seek={self.offset} conv=notrunc 2>/dev/null", timeout=30)
        self.corrupted.append(remote)

    def __getattr__(self, name: str):
        return getattr(self.device, name)
