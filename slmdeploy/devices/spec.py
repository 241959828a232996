"""Device specs: ``local``, ``adb:SERIAL``, ``adb-direct:HOST:PORT``, ``ssh:USER@HOST[:PORT]``."""

from __future__ import annotations

from dataclasses import dataclass

from slmdeploy.errors import DeviceError

TRANSPORTS = ("local", "adb", "adb-direct", "ssh")
EXAMPLES = "local, adb:SERIAL, adb-direct:127.0.0.1:5555, ssh:pi@raspberrypi.local:22"


@dataclass(frozen=True)
class DeviceSpec:
    transport: str
    address: str  # serial, host:port or user@host[:port]; "" for local

    def __str__(self) -> str:
        return self.transport if not self.address else f"{self.transport}:{self.address}"


def parse(spec: str) -> DeviceSpec:
    spec = spec.strip()
    if spec in ("", "local"):
        return DeviceSpec("local", "")
    transport, sep, address = spec.partition(":")
    if not sep or transport not in TRANSPORTS or not address:
        raise DeviceError(f"cannot read device {spec!r}: write it as one of {EXAMPLES}.")
    if transport == "adb-direct" and ":" not in address:
        raise DeviceError(f"adb-direct needs HOST:PORT (e.g. adb-direct:192.168.1.20:5555), got {address!r}.")
    if transport == "ssh" and "@" not in address:
        raise DeviceError(f"ssh needs USER@HOST[:PORT] (e.g. ssh:pi@raspberrypi.local), got {address!r}.")
    return DeviceSpec(transport, address)
