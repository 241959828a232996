"""``EmulatedPhone``: an adbd on a loopback TCP port, backed by a sandbox directory.

The real adb client (``adb connect 127.0.0.1:PORT``) and pure-Python clients talk
to it like to a phone in wireless-debugging mode: shell (v1 and v2), exec, sync
(push/pull/ls), reboot; with RSA auth, a generated /proc and /sys, a heating model
and injectable faults.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from slmdeploy.devices.emulator.auth import KeyStore
from slmdeploy.devices.emulator.connection import FEATURES, Connection
from slmdeploy.devices.emulator.cpu_share import CpuShare
from slmdeploy.devices.emulator.faults import FaultPlan, Faults
from slmdeploy.devices.emulator.processes import ProcessTable
from slmdeploy.devices.emulator.profiles import Profile, load_profile
from slmdeploy.devices.emulator.sandbox import Sandbox, temporary_root
from slmdeploy.devices.emulator.shell import ShellSession, shell_request
from slmdeploy.devices.emulator.stream import Stream
from slmdeploy.devices.emulator.sync import SyncSession
from slmdeploy.devices.emulator.thermal import ThermalModel

log = logging.getLogger(__name__)

Service = Callable[[Stream, Connection], None]


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


class EmulatedPhone:
    """An emulated Android phone reachable over adb's TCP transport.

    Args:
        profile: shipped profile name (``pixel8``, ``galaxy-s24``), JSON path or Profile.
        root: sandbox directory (kept); None makes a temporary one, removed on stop().
        host, port: where to listen; port 0 picks a free port (see ``.port``).
        auth_required: send AUTH like a production phone (``ro.adb.secure=1``).
        auto_accept_keys: accept unknown host keys, as if the user tapped "Allow".
        authorized_keys: adbkey.pub lines accepted from the start.
        faults: faults armed at start; change them later with the methods below.
        isolation: "auto", "namespace" or "rewrite" (see sandbox.py).
        thermal_interval_s: how often the heating model updates the sysfs files.
        features: what adbd advertises in its banner; leave out ``shell_v2`` for a phone
            older than Android 7 (its ``shell,v2`` requests are then refused, as such an adbd does).
        cpu_share: host cores every command of the phone shares (e.g. 0.1): a phone that much
            slower than this host, whose benchmarks take device time rather than host CPU (needs root).
    """

    def __init__(
        self,
        profile: str | Path | Profile = "pixel8",
        *,
        root: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_required: bool = True,
        auto_accept_keys: bool = True,
        authorized_keys: list[str] | None = None,
        faults: FaultPlan | None = None,
        isolation: str = "auto",
        thermal_interval_s: float = 0.2,
        features: tuple[str, ...] = FEATURES,
        cpu_share: float | None = None,
    ) -> None:
        self.features = tuple(features)
        self.cpu_share_cores = cpu_share
        self.cpu_share: CpuShare | None = None
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        self._own_root = root is None
        self.root = Path(root) if root is not None else temporary_root()
        self.host = host
        self._requested_port = port
        self.auth_required = auth_required
        self.auto_accept_keys = auto_accept_keys
        self.faults = Faults(faults)
        self.sandbox = Sandbox(self.root, self.profile, isolation=isolation,
                               extra_props={"ro.adb.secure": "1" if auth_required else "0"})
        self.keys = KeyStore(self.sandbox.path("data/misc/adb/adb_keys"), authorized_keys)
        self.processes = ProcessTable()
        self.thermal = ThermalModel(self.profile, self.sandbox, self.processes, thermal_interval_s)
        self._listener: socket.socket | None = None
        self._port: int | None = None
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._down_until = 0.0
        self._stopping = threading.Event()
        self.reboots = 0

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("phone not started")
        return self._port

    @property
    def serial(self) -> str:
        """What adb calls this device after ``adb connect``."""
        return f"{self.host}:{self.port}"

    @property
    def isolation(self) -> str:
        """The isolation mode in use: "namespace" or "rewrite"."""
        return self.sandbox.mode

    def start(self) -> EmulatedPhone:
        self._stopping.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self._requested_port))
            listener.listen(16)
            self.sandbox.create()
            self.sandbox.start()
            if self.cpu_share_cores is not None:
                self.cpu_share = CpuShare(self.profile.name, self.cpu_share_cores)
        except BaseException:
            listener.close()
            self.sandbox.stop()
            raise
        self.thermal.start()
        self._listener = listener
        self._port = listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name=f"phone-accept-{self.port}", daemon=True).start()
        log.info("emulated %s listening on %s (isolation=%s, root=%s)", self.profile.model, self.serial,
                 self.isolation, self.root)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        self.drop_connections()
        self.processes.kill_all()
        self.thermal.stop()
        self.sandbox.stop()
        if self.cpu_share is not None:
            self.cpu_share.remove()
            self.cpu_share = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EmulatedPhone:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, addr = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._down_until:
                log.info("refusing %s:%s while rebooting", *addr)
                sock.close()  # still "booting": adbd is not up yet
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(self, sock, f"{addr[0]}:{addr[1]}")
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=conn.serve, name=f"phone-conn-{addr[1]}", daemon=True).start()

    def forget_connection(self, conn: Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def drop_connections(self) -> None:
        """Drop every transport at once (cable pulled / Wi-Fi lost)."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn.drop()

    # -- what connections need ---------------------------------------------------------------
    def banner(self) -> str:
        props = self.sandbox.props()
        fields = [f"{k}={props.get(k, '')}" for k in ("ro.product.name", "ro.product.model", "ro.product.device")]
        fields.append("features=" + ",".join(self.features))
        return "device::" + ";".join(fields)

    def resolve_service(self, name: str) -> Service | None:
        """The handler for an OPENed service name, or None (the host gets CLSE)."""
        if name.startswith("shell,") and "shell_v2" not in self.features:
            return None  # an adbd without the shell protocol does not know the service
        if name.startswith(("shell:", "shell,", "exec:")):
            request = shell_request(name)
            return lambda stream, conn: ShellSession(self, conn, stream, request).run()
        if name.startswith("sync:"):
            return lambda stream, conn: SyncSession(self, conn, stream).run()
        if name.startswith("reboot:"):
            return lambda stream, conn: self._reboot_service(stream)
        return None

    def _reboot_service(self, stream: Stream) -> None:
        stream.close()
        self.reboot()

    def spawn(self, command: str | None, *, term: str | None = None, **popen: Any) -> subprocess.Popen[bytes]:
        """Start a command as the phone's shell would and track it."""
        wrap = self.cpu_share.wrap if self.cpu_share is not None else None
        proc = self.sandbox.popen(command, term=term, wrap=wrap, **popen)
        self.processes.add(proc.pid)
        return proc

    # -- host-side conveniences ----------------------------------------------------------------
    def run(self, command: str, timeout: float = 30.0) -> CommandResult:
        """Run ``command`` on the phone without adb (for tests and debugging)."""
        proc = self.spawn(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=timeout)
        return CommandResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def device_path(self, path: str) -> Path:
        """Host path of the phone's file ``path`` (e.g. "/data/local/tmp/x")."""
        return self.sandbox.host_path(path)

    # -- faults ------------------------------------------------------------------------------
    def reboot(self, downtime_s: float | None = None) -> None:
        """Drop all connections, kill every process, refuse connections for a while.

        /data and /sdcard (including /data/local/tmp) survive; /tmp and processes do not.
        """
        downtime = self.faults.reboot_downtime_s if downtime_s is None else downtime_s
        log.warning("rebooting (down for %.1fs)", downtime)
        self._down_until = float("inf")  # nobody gets in while the sandbox restarts
        self.reboots += 1
        self.drop_connections()
        self.processes.kill_all()
        self.sandbox.restart()
        self.thermal.reset()
        self._down_until = time.monotonic() + downtime

    def drop_next_push_after(self, nbytes: int) -> None:
        """The next push drops the transport once it has received ``nbytes``."""
        self.faults.update(drop_push_after_bytes=nbytes)

    def drop_next_shell_after(self, seconds: float, matching: str | None = None) -> None:
        """The next command (containing ``matching``, if given) is killed and the transport dropped after ``seconds``."""
        self.faults.update(drop_shell_after_s=seconds, drop_shell_matching=matching)

    def set_link_speed(self, bytes_per_s: float | None) -> None:
        """Throttle every connection (each direction) to ``bytes_per_s``; None: full speed."""
        self.faults.update(link_bytes_per_s=bytes_per_s)

    def set_storage_quota(self, nbytes: int | None) -> None:
        """Cap /data + /sdcard at ``nbytes`` (pushes beyond fail with ENOSPC); None: no cap."""
        self.faults.update(data_quota_bytes=nbytes)

    def fill_storage(self) -> None:
        """Make the storage full now: the quota becomes what is already stored."""
        self.set_storage_quota(self.sandbox.data_usage())
