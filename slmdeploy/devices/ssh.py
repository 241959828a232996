"""``ssh:USER@HOST[:PORT]``: a Linux board (Jetson, Raspberry Pi, any SBC) over SSH.

paramiko does the connection: authentication by key (``key_filename``, else
``$SLMDEPLOY_SSH_KEY``, else the usual ``~/.ssh/id_*``) or through the ssh agent. Host keys
are checked against ``~/.ssh/known_hosts``: a changed key is refused; an unknown one is
accepted for the session (like ``StrictHostKeyChecking=accept-new``, without writing the
file) unless ``strict_host_key=True``. Commands get their exit status and stderr natively;
push and pull go through SFTP (pipelined, with progress, memory bounded). The work directory
defaults to ``~/.cache/slmdeploy/device`` on the board (made absolute at connect).

A command past its timeout is killed on the board: every command records its process
group in a scratch pid file, and on timeout a second channel kills that group.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Sequence

from slmdeploy.devices.base import DeviceInfo, ProgressFn, ShellResult, quote_cmd
from slmdeploy.devices.lock import device_lock
from slmdeploy.errors import DeviceError

DEFAULT_TIMEOUT = 300.0
IO_TIMEOUT = 60.0
DEFAULT_WORKDIR = "~/.cache/slmdeploy/device"
WINDOW = 2 << 20  # SSH channel window (paramiko's own buffers get slow beyond a few MiB)
# AES-GCM first: one pass for encryption and integrity, ~1.5x the throughput of aes-ctr + hmac in paramiko.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
_SFTP_BLOCK = 1 << 20
_PULL_DEPTH = 64  # read requests in flight during a pull (~2 MiB)
# SFTP data per request: a 32 KiB request plus its header would not fit OpenSSH's 32 KiB
# channel packets and go out as two SSH packets; this size makes it one.
_SFTP_REQUEST = 32768 - 64 - 48


def parse_address(address: str) -> tuple[str, str, int]:
    user, sep, hostport = address.rpartition("@")
    if not sep or not user or not hostport:
        raise DeviceError(f"ssh needs USER@HOST[:PORT], got {address!r}")
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest.lstrip(":") or "22"
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, "22"
    if not port.isdigit():
        raise DeviceError(f"ssh port must be a number, got {port!r} in {address!r}")
    return user, host, int(port)


class SshDevice:
    """A Linux machine reached over SSH."""

    transport = "ssh"

    def __init__(
        self,
        address: str,
        *,
        key_filename: str | Path | None = None,
        password: str | None = None,
        known_hosts: str | Path | None = None,
        strict_host_key: bool = False,
        workdir: str = DEFAULT_WORKDIR,
        connect_timeout: float = 15.0,
        reconnect_timeout: float = 30.0,
        io_timeout: float = IO_TIMEOUT,
    ) -> None:
        try:
            import paramiko  # noqa: F401
        except ImportError as err:  # pragma: no cover
            raise DeviceError("the ssh transport needs paramiko: pip install 'slmdeploy[devices]'") from err
        self.user, self.host, self.port = parse_address(address)
        self.address = address
        self.spec = f"ssh:{address}"
        key_filename = key_filename or os.environ.get("SLMDEPLOY_SSH_KEY")
        self.key_filename = str(key_filename) if key_filename else None
        self.password = password
        self.known_hosts = Path(known_hosts) if known_hosts else Path.home() / ".ssh" / "known_hosts"
        self.strict_host_key = strict_host_key
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.io_timeout = io_timeout
        self._lock = threading.RLock()
        self._client = None
        self._sftp = None
        self._connect(time.monotonic())  # first contact: one try, fail fast
        self.workdir = self._resolve_workdir(workdir)

    # -- connection --------------------------------------------------------------------
    def _connect(self, deadline: float) -> None:
        import paramiko

        last: Exception | None = None
        while True:
            client = paramiko.SSHClient()
            if self.known_hosts.exists():
                client.load_host_keys(str(self.known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy() if self.strict_host_key else _AcceptNew())
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle stalls on small requests
                client.connect(
                    self.host, port=self.port, sock=sock, transport_factory=_transport_factory, username=self.user, password=self.password,
                    key_filename=self.key_filename, timeout=self.connect_timeout,
                    banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                    channel_timeout=self.connect_timeout,
                    look_for_keys=self.key_filename is None, allow_agent=True,
                )
                transport = client.get_transport()
                transport.set_keepalive(15)
                self._client = client
                return
            except paramiko.BadHostKeyException as err:
                client.close()
                raise DeviceError(
                    f"{self.spec}: the host key changed ({err.key.get_name()}); if the board was reinstalled, "
                    f"remove its line from {self.known_hosts}."
                ) from None
            except paramiko.AuthenticationException as err:
                client.close()
                raise DeviceError(
                    f"{self.spec}: authentication failed ({err}); pass key_filename= or add your key "
                    f"with ssh-copy-id {self.user}@{self.host}."
                ) from None
            except paramiko.SSHException as err:
                client.close()
                if "not found in known_hosts" in str(err):
                    raise DeviceError(f"{self.spec}: unknown host key and strict_host_key is on; "
                                      f"ssh to it once to add it to {self.known_hosts}.") from None
                last = err
            except (OSError, EOFError) as err:  # refused, unreachable, reset: the board may be rebooting
                client.close()
                last = err
            if time.monotonic() + 0.5 >= deadline:
                raise DeviceError(f"cannot connect to {self.spec}: {last}") from None
            time.sleep(0.5)

    def _transport(self):
        with self._lock:
            if self._client is None or not self._client.get_transport() or not self._client.get_transport().is_active():
                self._discard()
                self._connect(time.monotonic() + self.reconnect_timeout)
            return self._client.get_transport()

    def _discard(self) -> None:
        for thing in (self._sftp, self._client):
            if thing is not None:
                try:
                    thing.close()
                except Exception:
                    pass
        self._sftp = self._client = None

    def _resolve_workdir(self, workdir: str) -> str:
        if workdir.startswith("~"):
            home = self.shell("printf %s \"$HOME\"", timeout=self.connect_timeout).stdout.strip()
            if not home.startswith("/"):
                raise DeviceError(f"{self.spec}: cannot tell the home directory (got {home!r})")
            workdir = home + workdir[1:]
        return workdir.rstrip("/") or "/"

    # -- Device protocol ---------------------------------------------------------------------
    def shell(self, cmd: str | Sequence[str], timeout: float | None = None) -> ShellResult:
        line = quote_cmd(cmd)
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pidfile = f"/tmp/.slmdeploy-{secrets.token_hex(8)}.pid"
        # The login shell sshd starts is a session leader: $$ is the command's process group.
        wrapped = f"echo $$ > {pidfile}; sh -c {shlex.quote(line)} </dev/null; rc=$?; rm -f {pidfile}; exit $rc"
        what = f"`{line if len(line) < 160 else line[:157] + '...'}` on {self.spec}"
        try:
            channel = self._transport().open_session(timeout=self.connect_timeout)
            channel.exec_command(wrapped)
        except DeviceError:
            raise
        except Exception as err:
            self._lost(f"the start of {what}", err)
        out, err = bytearray(), bytearray()

        def drain() -> None:
            while channel.recv_ready():
                out.extend(channel.recv(1 << 16))
            while channel.recv_stderr_ready():
                err.extend(channel.recv_stderr(1 << 16))

        try:
            # The exit status arrives after all output (SSH keeps a channel's messages in
            # order), so once it is there, draining the buffers gets everything.
            while not channel.status_event.wait(min(0.02, max(deadline - time.monotonic(), 0))):
                drain()
                if time.monotonic() >= deadline:
                    self._kill(pidfile)
                    raise DeviceError(f"timed out after {timeout:.0f} s: {what} (the command was killed)")
                if channel.status_event.is_set():
                    continue
                if channel.closed or not channel.get_transport().is_active():
                    raise DeviceError(f"{self.spec}: connection lost before {what} finished")
            drain()
            code = channel.recv_exit_status()
        finally:
            channel.close()
        if code == -1:  # closed without a status: the connection died
            raise DeviceError(f"{self.spec}: connection lost before {what} finished")
        return ShellResult(code, out.decode(errors="replace"), err.decode(errors="replace"))

    def _kill(self, pidfile: str) -> None:
        """Kill the process group recorded in ``pidfile`` (a timed-out command)."""
        try:
            channel = self._transport().open_session(timeout=self.connect_timeout)
            channel.settimeout(self.connect_timeout)
            q = shlex.quote(pidfile)
            channel.exec_command(f"p=$(cat {q} 2>/dev/null) && kill -KILL -- -$p 2>/dev/null; rm -f {q}")
            channel.recv_exit_status()
            channel.close()
        except Exception:  # best effort: the caller reports the timeout either way
            pass

    def _sftp_client(self):
        with self._lock:
            transport = self._transport()
            if self._sftp is None or self._sftp.get_channel().closed:
                import paramiko

                self._sftp = paramiko.SFTPClient.from_transport(transport, window_size=WINDOW, max_packet_size=32768)
            self._sftp.get_channel().settimeout(self.io_timeout)
            return self._sftp

    def push(self, local: Path, remote: str, progress: ProgressFn | None = None) -> None:
        local = Path(local)

        def run() -> None:
            sftp = self._sftp_client()
            try:
                dst = sftp.open(remote, "wb")
            except FileNotFoundError:  # like adb push: missing parent directories are made
                self.shell(["mkdir", "-p", posixpath.dirname(remote) or "/"], timeout=self.io_timeout)
                dst = sftp.open(remote, "wb")
            with open(local, "rb") as src, dst:
                dst.MAX_REQUEST_SIZE = _SFTP_REQUEST
                dst.set_pipelined(True)
                while block := src.read(_SFTP_BLOCK):
                    dst.write(block)
                    if progress:
                        progress(len(block))
            size = sftp.stat(remote).st_size
            if size != local.stat().st_size:
                raise DeviceError(f"{self.spec}: push of {remote} ended at {size} of {local.stat().st_size} bytes")

        self._transfer(f"push to {remote}", run)

    def pull(self, remote: str, local: Path, progress: ProgressFn | None = None) -> None:
        from slmdeploy.devices.adb_common import pull_atomically

        def fetch(out) -> None:
            sftp = self._sftp_client()
            with sftp.open(remote, "rb") as src:
                _read_pipelined(sftp, src, out, progress)

        self._transfer(f"pull of {remote}", lambda: pull_atomically(Path(local), fetch))

    def _transfer(self, what: str, run) -> None:
        try:
            run()
        except DeviceError:
            raise
        except OSError as err:
            if err.errno and not isinstance(err, (ConnectionError, TimeoutError)):  # the board said no
                raise DeviceError(f"{self.spec}: {what} failed: {err.strerror or err}") from None
            self._lost(what, err)
        except Exception as err:  # EOFError, paramiko.SSHException: the session is unusable
            self._lost(what, err)

    def _lost(self, what: str, err: BaseException) -> None:
        with self._lock:
            self._discard()
        raise DeviceError(f"{self.spec}: connection lost during {what}: {err or type(err).__name__}") from None

    def info(self) -> DeviceInfo:
        from slmdeploy.devices.android import linux_info

        return linux_info(self, serial=f"{self.host}:{self.port}")

    def lock(self):
        return device_lock(self.spec)

    def close(self) -> None:
        with self._lock:
            self._discard()


def _read_pipelined(sftp, src, out, progress: ProgressFn | None) -> None:
    """Read a remote file with ``_PULL_DEPTH`` requests in flight, writing each answer at once.

    paramiko's own prefetch keeps every answer until it is read (a fast link buffers the
    whole file, and its readv leaks split chunks); here memory stays at the pipeline depth.
    SFTP answers in request order, so waiting for the oldest request gets its data first.
    """
    from collections import deque

    from paramiko.sftp import CMD_DATA, CMD_READ, int64

    size = src.stat().st_size
    pending: deque[tuple[int, int, int]] = deque()
    offset = 0
    while pending or offset < size:
        while len(pending) < _PULL_DEPTH and offset < size:
            length = min(_SFTP_REQUEST, size - offset)
            num = sftp._async_request(type(None), CMD_READ, src.handle, int64(offset), int(length))
            pending.append((num, offset, length))
            offset += length
        num, start, length = pending.popleft()
        kind, msg = sftp._read_response(num)
        if kind != CMD_DATA:
            raise DeviceError(f"sftp read at {start} returned message type {kind}")
        data = msg.get_string()
        out.write(data)
        if len(data) < length:  # a short read (a file that shrank, a server limit): fetch the rest now
            src.seek(start + len(data))
            rest = src.read(length - len(data))
            out.write(rest)
            data += rest
        if progress:
            progress(len(data))


def _transport_factory(sock, **kwargs):
    import paramiko

    transport = paramiko.Transport(sock, default_window_size=WINDOW, **kwargs)
    options = transport.get_security_options()
    known = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
    options.ciphers = tuple(known) + tuple(c for c in options.ciphers if c not in known)
    return transport


class _AcceptNew:
    """Unknown host key: accept it for this session (a changed key is still refused by paramiko)."""

    def missing_host_key(self, client, hostname, key) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
