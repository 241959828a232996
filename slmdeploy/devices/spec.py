"""Device specs: ``local``, ``adb:SERIAL``, ``adb-direct:HOST:PORT``, ``ssh:USER@HOST[:PORT]``."""

from __future__ import annotations

from dataclasses import dataclass

from slmdeploy.errors import DeviceError

TRANSPORTS = ("local", "adb", "adb-direct", "ssh")
EXAMPLES = "local, adb:SERIAL, adb-direct:127.0.0.1:5555, ssh:pi@raspberrypi.local:22"
SSH_PORT = 22


@dataclass(frozen=True)
class DeviceSpec:
    transport: str
    address: str  # serial, host:port or user@host[:port]; "" for local

    def __str__(self) -> str:
        return self.transport if not self.address else f"{self.transport}:{self.address}"


def parse(spec: str) -> DeviceSpec:
    if not isinstance(spec, str) or not spec.strip():
        raise DeviceError(f"empty device name: write it as one of {EXAMPLES}.")
    spec = spec.strip()
    if spec == "local":
        return DeviceSpec("local", "")
    transport, sep, address = spec.partition(":")
    if not sep or transport not in TRANSPORTS or not address:
        raise DeviceError(f"cannot read device {spec!r}: write it as one of {EXAMPLES}.")
    if transport == "adb-direct":
        host, sep, port = address.rpartition(":")
        if not sep or not host:
            raise DeviceError(f"adb-direct needs HOST:PORT (e.g. adb-direct:192.168.1.20:5555), got {address!r}.")
        check_port(port, spec)
    if transport == "adb":  # a network serial (HOST:PORT) names a port too
        host, sep, port = address.rpartition(":")
        if sep and host and port.isdigit():
            check_port(port, spec)
    if transport == "ssh":
        if "@" not in address:
            raise DeviceError(f"ssh needs USER@HOST[:PORT] (e.g. ssh:pi@raspberrypi.local), got {address!r}.")
        parse_ssh_address(address)
    return DeviceSpec(transport, address)


def check_port(port: str, spec: str) -> int:
    """``port`` as a TCP port number (1-65535)."""
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DeviceError(f"port {port[:20]!r} in device {spec[:200]!r} is not a TCP port (1-65535).")
    return int(port)


def parse_ssh_address(address: str) -> tuple[str, str, int]:
    """(user, host, port) of ``USER@HOST[:PORT]`` (``[v6addr]:PORT`` too); the port defaults to 22."""
    user, sep, hostport = address.rpartition("@")
    if not sep or not user or not hostport:
        raise DeviceError(f"ssh needs USER@HOST[:PORT], got {address!r}")
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        port = rest.lstrip(":") or str(SSH_PORT)
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    else:
        host, port = hostport, str(SSH_PORT)
    if not host:
        raise DeviceError(f"ssh needs USER@HOST[:PORT], got {address!r}")
    return user, host, check_port(port, f"ssh:{address}")


def _host(host: str) -> str:
    """Host names are case-insensitive; an IPv6 address is written in brackets either way."""
    host = host.strip("[]").lower()
    return f"[{host}]" if ":" in host else host


def identity(spec: str) -> str:
    """The physical device a spec names, whatever transport reaches it.

    ``adb:127.0.0.1:5555`` and ``adb-direct:127.0.0.1:5555`` are one phone (``adb-device:
    127.0.0.1:5555``): a network serial is the adbd address adb-direct connects to.
    ``ssh:u@h`` and ``ssh:u@h:22`` are one board (``ssh:u@h:22``). The lock is keyed by this,
    so two specs of one device never run at once. A spec that does not parse is its own key.
    """
    try:
        parsed = parse(spec)
    except DeviceError:
        return spec.strip()
    if parsed.transport in ("adb", "adb-direct"):
        host, sep, port = parsed.address.rpartition(":")
        serial = f"{_host(host)}:{port}" if sep and port.isdigit() else parsed.address
        return f"adb-device:{serial}"
    if parsed.transport == "ssh":
        try:
            user, host, port = parse_ssh_address(parsed.address)
        except DeviceError:
            return str(parsed)
        return f"ssh:{user}@{_host(host)}:{port}"
    return str(parsed)
