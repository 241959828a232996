"""One transport connection (a TCP client such as the adb server), as adbd runs it.

A reader thread parses messages: CNXN and AUTH bring the link online, OPEN starts a
service on a new stream (each in its own thread), OKAY/WRTE/CLSE drive the streams.
Writers share one lock so messages never interleave on the socket.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from slmdeploy.devices.emulator import protocol as p
from slmdeploy.devices.emulator.auth import new_token
from slmdeploy.devices.emulator.faults import LinkThrottle
from slmdeploy.devices.emulator.stream import Stream

if TYPE_CHECKING:
    from slmdeploy.devices.emulator.daemon import EmulatedPhone

log = logging.getLogger(__name__)

# What this daemon implements, as adbd names features in its CNXN banner.
FEATURES = ("shell_v2", "stat_v2", "ls_v2", "fixed_push_mkdir", "fixed_push_symlink_timestamp")


class Connection:
    """adbd's side of one transport."""

    def __init__(self, phone: EmulatedPhone, sock: socket.socket, peer: str) -> None:
        self.phone = phone
        self.sock = sock
        self.peer = peer
        self.version = p.A_VERSION_MIN  # until the host's CNXN says more
        self._version_known = False  # a reconnecting host may skip checksums in its first CNXN
        self._max_payload = 4096  # adb's legacy size until CNXN
        self.online = False
        self.host_banner = ""
        self._token = b""
        self._send_lock = threading.Lock()
        self._streams_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._ids = itertools.count(1)
        self._send_pace = LinkThrottle(phone.faults)
        self._recv_pace = LinkThrottle(phone.faults)
        self._closed = threading.Event()
        self._drop_lock = threading.Lock()
        self._handlers: dict[int, Callable[[p.Message], None]] = {
            p.A_CNXN: self._on_cnxn,
            p.A_AUTH: self._on_auth,
            p.A_OPEN: self._on_open,
            p.A_OKAY: self._on_okay,
            p.A_WRTE: self._on_write,
            p.A_CLSE: self._on_close,
        }

    # -- StreamOwner -------------------------------------------------------------------
    @property
    def max_payload(self) -> int:
        return self._max_payload

    def send(self, msg: p.Message) -> None:
        data = p.pack(msg, with_checksum=self.version < p.A_VERSION_SKIP_CHECKSUM)
        with self._send_lock:
            if self._closed.is_set():
                raise ConnectionError("connection dropped")
            self._send_pace.pace(len(data))
            self.sock.sendall(data)

    def forget_stream(self, local_id: int) -> None:
        with self._streams_lock:
            self._streams.pop(local_id, None)

    # -- lifecycle -----------------------------------------------------------------------
    def serve(self) -> None:
        """Reader loop; returns when the peer goes away or the phone drops us."""
        try:
            while not self._closed.is_set():
                verify = self._version_known and self.version < p.A_VERSION_SKIP_CHECKSUM
                msg = p.read_message(self.sock, verify_checksum=verify)
                self._recv_pace.pace(p.HEADER.size + len(msg.data))
                self._handle(msg)
        except (OSError, p.ProtocolError) as exc:
            if not self._closed.is_set():
                log.info("connection %s ended: %s", self.peer, exc)
        finally:
            self.drop()

    def drop(self) -> None:
        """Abruptly end the transport (cable pulled): every stream sees it closed."""
        with self._drop_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self._streams_lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.peer_closed()
        self.phone.forget_connection(self)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- messages ------------------------------------------------------------------------
    def _handle(self, msg: p.Message) -> None:
        handler = self._handlers.get(msg.command)
        if handler is None:  # SYNC (obsolete), STLS (TLS is not offered) or garbage
            log.warning("%s: ignoring %r", self.peer, msg)
            return
        handler(msg)

    def _on_cnxn(self, msg: p.Message) -> None:
        self.version = min(p.A_VERSION, msg.arg0)
        self._version_known = True
        self._max_payload = min(p.MAX_PAYLOAD, msg.arg1)
        self.host_banner = msg.data.rstrip(b"\0").decode(errors="replace")
        log.info("%s: CNXN version=0x%08x max_payload=%d banner=%r", self.peer, msg.arg0, msg.arg1,
                 self.host_banner)
        if self.phone.auth_required and not self.online:
            self._send_token()
        else:
            self._go_online()

    def _send_token(self) -> None:
        self._token = new_token()
        self.send(p.Message(p.A_AUTH, p.AUTH_TOKEN, 0, self._token))

    def _go_online(self) -> None:
        self.online = True
        self.send(p.Message(p.A_CNXN, p.A_VERSION, p.MAX_PAYLOAD, self.phone.banner().encode()))

    def _on_auth(self, msg: p.Message) -> None:
        if msg.arg0 == p.AUTH_SIGNATURE:
            key = self.phone.keys.verify(self._token, msg.data) if self._token else None
            if key is not None:
                log.info("%s: authenticated with %s", self.peer, key.split()[-1])
                self._go_online()
            else:
                self._send_token()  # adbd asks again; the host then tries its next key
        elif msg.arg0 == p.AUTH_RSAPUBLICKEY:
            key_text = msg.data.rstrip(b"\0").decode(errors="replace")
            if self.phone.auto_accept_keys:
                log.info("%s: accepting new key %s (auto_accept_keys)", self.peer, key_text.split()[-1])
                self.phone.keys.add(key_text)
                self._go_online()
            else:
                log.warning("%s: key not authorized; leaving the host unauthorized", self.peer)
        else:
            log.warning("%s: unexpected AUTH type %d", self.peer, msg.arg0)

    def _on_open(self, msg: p.Message) -> None:
        if not self.online:
            return
        service = msg.data.rstrip(b"\0").decode(errors="replace")
        run = self.phone.resolve_service(service)
        if run is None:
            log.info("%s: unknown service %r", self.peer, service)
            self.send(p.Message(p.A_CLSE, 0, msg.arg0))
            return
        stream = Stream(self, next(self._ids), msg.arg0, service)
        with self._streams_lock:
            self._streams[stream.local_id] = stream
        self.send(p.Message(p.A_OKAY, stream.local_id, stream.remote_id))
        threading.Thread(target=self._run_service, args=(run, stream),
                         name=f"svc-{service[:24]}", daemon=True).start()

    def _run_service(self, run: Callable[[Stream, Connection], None], stream: Stream) -> None:
        try:
            run(stream, self)
        except ConnectionError:
            pass  # the host or the link went away mid-service
        except Exception:  # a service bug must not take the daemon down
            log.exception("service %r failed", stream.service)
        finally:
            stream.close()

    def _stream(self, msg: p.Message) -> Stream | None:
        with self._streams_lock:
            return self._streams.get(msg.arg1)

    def _on_okay(self, msg: p.Message) -> None:
        stream = self._stream(msg)
        if stream is not None:
            stream.ready()

    def _on_write(self, msg: p.Message) -> None:
        stream = self._stream(msg)
        if stream is not None:
            stream.deliver(msg.data)

    def _on_close(self, msg: p.Message) -> None:
        stream = self._stream(msg)
        if stream is not None:
            stream.peer_closed(acknowledge=True)
