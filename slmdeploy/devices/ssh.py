"""``ssh:USER@HOST[:PORT]``: a Linux board (Jetson, Raspberry Pi, any SBC) over SSH.

paramiko does the connection: authentication by key (``key_filename``, else
``$SLMDEPLOY_SSH_KEY``, else the usual ``~/.ssh/id_*``) or through the ssh agent. Host keys
are checked against ``~/.ssh/known_hosts``: a changed key is refused; an unknown one is
accepted for the session (like ``StrictHostKeyChecking=accept-new``, without writing the
file) unless ``strict_host_key=True``. Commands get their exit status and stderr natively.
The work directory defaults to ``~/.cache/slmdeploy/device`` on the board (made absolute at
connect).

push and pull go through the system OpenSSH client when there is one (``ssh`` on PATH) and a
key file to log in with: the file is streamed into ``ssh ... 'cat > FILE'`` (``sendfile`` into
its stdin pipe, progress per MiB) over one ControlMaster connection per device (no handshake
per call), with AES-GCM preferred (ChaCha20 for boards without AES instructions). OpenSSH
moves data about twice as fast as paramiko, whose per-packet cost is Python (see
``benchmarks/push_throughput.py``). The OpenSSH connection logs in as the same user
with the same key files, and accepts only the host key the paramiko connection checked (it
is pinned in a private known-hosts file). Without ``ssh``, without a key file (agent-only or
password logins), or when OpenSSH cannot log in, transfers use paramiko's SFTP (pipelined,
memory bounded). ``transfer="openssh"|"sftp"`` (or ``$SLMDEPLOY_SSH_TRANSFER``) forces one;
``info().extra["file_transfer"]`` says which is used.

A command past its timeout is killed on the board: every command records its process
group in a scratch pid file, and on timeout a second channel kills that group.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import secrets
import select
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Sequence

from slmdeploy.devices.base import DeviceInfo, ProgressFn, ShellResult, quote_cmd
from slmdeploy.devices.lock import device_lock
from slmdeploy.devices.spec import parse_ssh_address as parse_address
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

TRANSFERS = ("auto", "openssh", "sftp")
# OpenSSH ciphers, fastest first for a board with AES instructions (x86 AES-NI, ARMv8 crypto
# extensions); one without them (a Raspberry Pi 4) decrypts ChaCha20-Poly1305 faster.
OPENSSH_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                   "aes128-ctr", "aes192-ctr", "aes256-ctr")
OPENSSH_CIPHERS_NO_AES = ("chacha20-poly1305@openssh.com", *(c for c in OPENSSH_CIPHERS if "chacha" not in c))
CONTROL_PERSIST = 120  # s an idle OpenSSH master connection stays up (also ends one a crash left behind)
_CHUNK = 1 << 20  # bytes per write to / read from the ssh process (and per progress call)
_HOST_ALIAS = "slmdeploy-board"  # the name the pinned host key is filed under
PIDFILE_PREFIX = "/tmp/.slmdeploy-"  # + token + ".pid": a command's process group, for killing it on timeout
_DEFAULT_KEYS = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")  # what paramiko's look_for_keys tries

log = logging.getLogger(__name__)


def stale_pidfile_cleanup() -> str:
    """A shell line removing command pid files whose process is gone (a link lost mid-command).

    An empty file is kept: its command is just starting.
    """
    return (f"for f in {shlex.quote(PIDFILE_PREFIX)}*.pid; do [ -f \"$f\" ] || continue; p=$(cat \"$f\" 2>/dev/null); "
            f"case \"$p\" in ''|*[!0-9]*) ;; *) [ -d \"/proc/$p\" ] || rm -f \"$f\" 2>/dev/null;; esac; done; true")


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
        transfer: str | None = None,
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
        transfer = transfer or os.environ.get("SLMDEPLOY_SSH_TRANSFER") or "auto"
        if transfer not in TRANSFERS:
            raise DeviceError(f"ssh transfer must be one of {', '.join(TRANSFERS)}, got {transfer!r}")
        self.transfer = transfer
        self.transfer_path: str | None = None  # "openssh" or "sftp" once decided (at the first push/pull)
        self.transfer_detail = ""
        self._lock = threading.RLock()
        self._openssh_lock = threading.Lock()
        self._client = None
        self._sftp = None
        self._openssh: _OpenSsh | None = None
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
        pidfile = f"{PIDFILE_PREFIX}{secrets.token_hex(8)}.pid"
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
        except (KeyboardInterrupt, SystemExit):  # interrupted here: the command goes too, as on a timeout
            self._kill(pidfile)
            raise
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
        openssh = self._file_transfer()
        if openssh is not None:
            openssh.push(local, remote, progress)
            return

        def run() -> None:
            sftp = self._sftp_client()
            try:
                dst = sftp.open(remote, "wb")
            except FileNotFoundError:  # like adb push: missing parent directories are made
                parent = posixpath.dirname(remote) or "/"
                made = self.shell(["mkdir", "-p", "--", parent], timeout=self.io_timeout)
                if not made.ok:
                    raise DeviceError(f"{self.spec}: push to {remote} failed: cannot create the directory {parent} "
                                      f"on the board ({_last_lines(made.stderr) or f'mkdir exit {made.exit_code}'})")
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

        openssh = self._file_transfer()
        if openssh is not None:
            pull_atomically(Path(local), lambda out: openssh.pull(remote, out, progress))
            return

        def fetch(out) -> None:
            sftp = self._sftp_client()
            with sftp.open(remote, "rb") as src:
                _read_pipelined(sftp, src, out, progress)

        self._transfer(f"pull of {remote}", lambda: pull_atomically(Path(local), fetch))

    # -- which path push and pull take -------------------------------------------------------
    def _file_transfer(self) -> "_OpenSsh | None":
        """The OpenSSH path for push/pull, or None for paramiko SFTP; decided at first use.

        With ``transfer="auto"`` a reason not to use OpenSSH (no binary, no key file, a
        failed login) falls back to SFTP for the life of this object; ``"openssh"`` raises it.
        """
        with self._openssh_lock:
            if self._openssh is not None or self.transfer_path == "sftp":
                return self._openssh
            reason = self._openssh_unusable()
            if reason is None:
                # Connection trouble here is an error, not a reason to give up on OpenSSH for good.
                host_key = self._transport().get_remote_server_key()
                has_aes = self.shell("grep -qiw aes /proc/cpuinfo", timeout=self.connect_timeout).ok
                try:
                    self._openssh = _OpenSsh(self, self._identity_files(), host_key, has_aes)
                except (DeviceError, OSError) as err:
                    reason = str(err)
            if self._openssh is not None:
                self.transfer_path, self.transfer_detail = "openssh", self._openssh.describe()
            elif self.transfer == "openssh":
                raise DeviceError(f"{self.spec}: transfer='openssh' was asked for, but {reason}")
            else:
                self.transfer_path, self.transfer_detail = "sftp", f"paramiko SFTP: {reason}"
            log.debug("%s: push/pull use %s (%s)", self.spec, self.transfer_path, self.transfer_detail)
            return self._openssh

    def _openssh_unusable(self) -> str | None:
        if self.transfer == "sftp":
            return "transfer='sftp' was asked for"
        if os.name != "posix":
            return "OpenSSH transfers need a POSIX host"
        if not shutil.which("ssh"):
            return "no ssh binary on PATH"
        if not self._identity_files():
            if self.key_filename:
                return f"the key file {self.key_filename} cannot be read"
            return "no key file to give OpenSSH (agent-only or password login)"
        return None

    def _identity_files(self) -> list[str]:
        """The key files the paramiko connection uses: key_filename, else the usual ~/.ssh/id_*."""
        if self.key_filename:
            return [self.key_filename] if os.access(self.key_filename, os.R_OK) else []
        home = Path.home() / ".ssh"
        return [str(home / name) for name in _DEFAULT_KEYS if os.access(home / name, os.R_OK)]

    def _transfer(self, what: str, run) -> None:
        try:
            run()
        except DeviceError:
            raise
        except OSError as err:
            if err.errno and not isinstance(err, (ConnectionError, TimeoutError)):  # the board said no
                raise DeviceError(f"{self.spec}: {what} failed: {err.strerror or err}") from None
            if err.errno is None and type(err) is OSError and self._connected():  # an SFTP status with no errno
                raise DeviceError(f"{self.spec}: {what} failed: the board's SFTP server answered {err}") from None
            self._lost(what, err)
        except Exception as err:  # EOFError, paramiko.SSHException: the session is unusable
            self._lost(what, err)

    def _connected(self) -> bool:
        with self._lock:
            transport = self._client.get_transport() if self._client is not None else None
            return bool(transport and transport.is_active())

    def _lost(self, what: str, err: BaseException) -> None:
        with self._lock:
            self._discard()
        raise DeviceError(f"{self.spec}: connection lost during {what}: {err or type(err).__name__}") from None

    def info(self) -> DeviceInfo:
        from slmdeploy.devices.android import linux_info

        info = linux_info(self, serial=f"{self.host}:{self.port}")
        try:
            self._file_transfer()
            info.extra["file_transfer"] = self.transfer_path
            info.extra["file_transfer_detail"] = self.transfer_detail
        except DeviceError as err:  # transfer="openssh" where it cannot work
            info.extra["file_transfer"] = None
            info.extra["file_transfer_detail"] = str(err)
        return info

    def lock(self):
        return device_lock(self.spec)

    def close(self) -> None:
        with self._openssh_lock:
            if self._openssh is not None:
                self._openssh.close()
                self._openssh = None
                self.transfer_path = None  # decided again (a fresh master connection) at the next transfer
        with self._lock:
            self._discard()


class _Stalled(Exception):
    pass


class _OpenSsh:
    """push/pull through the system ``ssh`` client, over one ControlMaster connection per device.

    A push streams the file into ``sh -c 'cat > FILE'`` on the board (parent directories
    made, the size on the board checked after); a pull reads ``cat FILE`` back; progress is
    reported per ``_CHUNK``. Every call has a stall timeout (the device's ``io_timeout``
    without a byte moving kills the ssh process), and OpenSSH's keepalives
    (``ServerAliveInterval``) end a connection that died. Remote paths are ``shlex.quote``d
    into the script, and the script is quoted again for the login shell.
    """

    def __init__(self, device: SshDevice, identities: list[str], host_key, has_aes: bool) -> None:
        """``host_key``: the key the paramiko connection checked (known_hosts, accept-new or
        strict); OpenSSH accepts that key and no other. ``has_aes``: the board has AES instructions."""
        self.device = device
        self.spec = device.spec
        self.ssh = shutil.which("ssh")
        self.ciphers = OPENSSH_CIPHERS if has_aes else OPENSSH_CIPHERS_NO_AES
        self.dir = tempfile.mkdtemp(prefix="slmdeploy-ssh-")  # mode 0700
        if len(self.dir) > 80 or any(c.isspace() or c == "%" for c in self.dir):
            os.rmdir(self.dir)  # unix socket paths are short; ssh options split on spaces
            self.dir = tempfile.mkdtemp(prefix="slmdeploy-ssh-", dir="/tmp")
        known_hosts = os.path.join(self.dir, "known_hosts")
        with open(known_hosts, "w") as fh:
            fh.write(f"{_HOST_ALIAS} {host_key.get_name()} {host_key.get_base64()}\n")
        options = {
            "BatchMode": "yes",  # never a prompt: a key that needs a passphrase fails the login
            "IdentitiesOnly": "yes",
            "UserKnownHostsFile": known_hosts,
            "GlobalKnownHostsFile": os.devnull,
            "StrictHostKeyChecking": "yes",
            "HostKeyAlias": _HOST_ALIAS,
            "CheckHostIP": "no",
            "UpdateHostKeys": "no",
            "ConnectTimeout": max(1, round(device.connect_timeout)),
            "ServerAliveInterval": max(1, round(device.io_timeout / 3)),
            "ServerAliveCountMax": 3,
            "Compression": "no",
            "Ciphers": ",".join(self.ciphers),
            "ControlMaster": "auto",
            "ControlPath": os.path.join(self.dir, "cm"),
            "ControlPersist": CONTROL_PERSIST,
            "ClearAllForwardings": "yes",
            "ForwardAgent": "no",
            "ForwardX11": "no",
            "PermitLocalCommand": "no",
            "LogLevel": "ERROR",
        }
        # -F /dev/null: no ~/.ssh/config, as for paramiko; -T: no tty; -e none: no escape character
        self.base = [self.ssh, "-F", os.devnull, "-T", "-e", "none", "-p", str(device.port), "-l", device.user]
        for key in identities:
            self.base += ["-i", key.replace("%", "%%")]
        for name, value in options.items():
            self.base += ["-o", f"{name}={value}"]
        self._finalizer = weakref.finalize(self, _close_master, list(self.base), device.host, self.dir)
        # Log in once: this starts the master connection that every transfer then reuses.
        try:
            code, _, err = self._run("true", "the OpenSSH login", stall=device.connect_timeout + 15)
        except DeviceError as err:
            self.close()
            raise DeviceError(f"OpenSSH could not log in ({err})") from None
        if code != 0:
            self.close()
            raise DeviceError(f"OpenSSH could not log in ({_last_lines(err) or f'exit status {code}'})")

    def describe(self) -> str:
        return f"{self.ssh}, ControlMaster connection, cipher {self.ciphers[0]} preferred"

    def close(self) -> None:
        self._finalizer()

    def push(self, local: Path, remote: str, progress: ProgressFn | None) -> None:
        q = shlex.quote
        what = f"push to {remote}"
        parent = posixpath.dirname(remote) or "."
        size = local.stat().st_size
        script = (f"[ -d {q(parent)} ] || mkdir -p -- {q(parent)} || exit 3\n"  # like adb push: parents are made
                  f"cat > {q(remote)} || exit 4\n"
                  f"stat -c %s -- {q(remote)} 2>/dev/null || wc -c < {q(remote)}")
        start = time.monotonic()
        with open(local, "rb", buffering=0) as src:
            code, out, err = self._run(script, what, src=src, progress=progress)
        if code == 3:
            raise DeviceError(f"{self.spec}: {what} failed: cannot create the directory {parent} on the board "
                              f"({_last_lines(err) or 'mkdir failed'})")
        if code == 4:
            raise DeviceError(f"{self.spec}: {what} failed: cannot write the file on the board "
                              f"({_last_lines(err) or 'cat failed'})")
        self._check(code, err, what)
        got = out.split()
        if not got or got[-1] != str(size).encode():
            arrived = got[-1].decode(errors="replace") if got else "an unknown size"
            raise DeviceError(f"{self.spec}: {what} ended at {arrived} of {size} bytes")
        log.debug("%s: %s via openssh: %d bytes in %.2f s", self.spec, what, size, time.monotonic() - start)

    def pull(self, remote: str, out, progress: ProgressFn | None) -> None:
        what = f"pull of {remote}"
        start = time.monotonic()
        code, _, err = self._run(f"exec cat -- {shlex.quote(remote)}", what, sink=out.write, progress=progress)
        self._check(code, err, what)
        log.debug("%s: %s via openssh in %.2f s", self.spec, what, time.monotonic() - start)

    def _check(self, code: int, err: str, what: str) -> None:
        if code == 0:
            return
        detail = _last_lines(err)
        if code == 255:  # ssh's own failure: connection, login, host key
            raise DeviceError(f"{self.spec}: {what} failed: ssh: {detail or 'the connection failed'}")
        if code < 0:
            raise DeviceError(f"{self.spec}: {what} failed: ssh was killed by signal {-code}")
        raise DeviceError(f"{self.spec}: {what} failed (exit {code}): {detail or 'no message'}")

    def _run(self, script: str, what: str, *, src=None, sink=None, progress: ProgressFn | None = None,
             stall: float | None = None) -> tuple[int, bytes, str]:
        """Run ``sh -c SCRIPT`` on the board with ``src`` as its stdin and ``sink`` taking its stdout.

        Returns (exit status, stdout when there is no sink, stderr). DeviceError when no
        byte moved for ``stall`` seconds (the device's io_timeout): the ssh process is killed.
        """
        stall = self.device.io_timeout if stall is None else stall
        cmd = [*self.base, "--", self.device.host, "sh -c " + shlex.quote(script)]
        out = bytearray()
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if src is not None else subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=errors, bufsize=0)
            except OSError as err:
                raise DeviceError(f"{self.spec}: {what} failed: cannot run {self.ssh}: {err}") from None
            try:
                if src is not None:
                    _feed(proc.stdin, src, _Progress(progress), stall)
                _drain(proc.stdout, sink or out.extend, _Progress(progress if sink else None), stall)
                code = proc.wait(timeout=stall)
            except (_Stalled, subprocess.TimeoutExpired):
                raise DeviceError(f"{self.spec}: {what} stalled: nothing moved for {stall:.0f} s "
                                  "(the ssh process was stopped)") from None
            except OSError as err:  # this side: reading the local file, writing the pulled one
                raise DeviceError(f"{self.spec}: {what} failed: {err.strerror or err}") from None
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None:
                        pipe.close()
            errors.seek(0)
            return code, bytes(out), errors.read().decode(errors="replace")


class _Progress:
    """Calls ``progress`` once per ``_CHUNK`` bytes moved, and with the rest at ``flush``."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.pending = 0

    def __call__(self, n: int) -> None:
        self.pending += n
        if self.progress and self.pending >= _CHUNK:
            self.progress(self.pending)
            self.pending = 0

    def flush(self) -> None:
        if self.progress and self.pending:
            self.progress(self.pending)
        self.pending = 0


def _grow_pipe(fd: int) -> None:
    """1 MiB pipe buffer (Linux): fewer switches between this process and ssh than the 64 KiB default."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _CHUNK)
    except (ImportError, OSError):
        pass


def _feed(pipe, src, progress: _Progress, stall: float) -> None:
    """Write the file ``src`` into ``pipe``, then close it; _Stalled if it stops taking data.

    ``sendfile`` moves page-cache pages into the pipe without a copy through Python (Linux);
    elsewhere the file goes in ``_CHUNK`` reads. Progress counts what the pipe took. A reader that
    went away (the command on the board failed) ends the feed early: the exit status and
    stderr then say why.
    """
    fd = pipe.fileno()
    _grow_pipe(fd)
    os.set_blocking(fd, False)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    try:
        if hasattr(os, "sendfile"):
            offset = 0
            while True:
                if not poller.poll(stall * 1000):
                    raise _Stalled
                try:
                    sent = os.sendfile(fd, src.fileno(), offset, _CHUNK)
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    return
                except OSError as err:
                    if offset or err.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSOCK, errno.EOPNOTSUPP):
                        raise
                    break  # no sendfile into a pipe here: copy below
                if not sent:
                    return  # end of file
                offset += sent
                progress(sent)
        buf = bytearray(_CHUNK)
        while n := src.readinto(buf):
            chunk = memoryview(buf)[:n]
            while chunk:
                if not poller.poll(stall * 1000):
                    raise _Stalled
                try:
                    chunk = chunk[os.write(fd, chunk):]
                except BlockingIOError:
                    continue
                except BrokenPipeError:
                    return
            progress(n)
    finally:
        progress.flush()
        pipe.close()


def _drain(pipe, sink, progress: _Progress, stall: float) -> None:
    """Read ``pipe`` to its end into ``sink``; _Stalled if nothing comes for ``stall`` seconds."""
    fd = pipe.fileno()
    _grow_pipe(fd)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    try:
        while True:
            if not poller.poll(stall * 1000):
                raise _Stalled
            data = os.read(fd, _CHUNK)
            if not data:
                return
            sink(data)
            progress(len(data))
    finally:
        progress.flush()


def _last_lines(text: str, n: int = 2) -> str:
    lines = [line.strip() for line in text.replace("\r", "").splitlines() if line.strip()]
    return "; ".join(lines[-n:])


def _close_master(base: list[str], host: str, directory: str) -> None:
    """End the master connection (``ssh -O exit``) and remove the private directory."""
    if os.path.exists(os.path.join(directory, "cm")):
        try:
            subprocess.run([*base, "-O", "exit", "--", host], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.SubprocessError):
            pass  # ControlPersist ends it once idle
    shutil.rmtree(directory, ignore_errors=True)


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
