"""Which devices are there: this host, every phone the adb server knows, and named ones."""

from __future__ import annotations

import socket

from slmdeploy.devices import open_device
from slmdeploy.devices.base import DeviceInfo
from slmdeploy.devices.spec import parse
from slmdeploy.errors import DeviceError


def adb_serials(host: str | None = None, port: int | None = None) -> list[str]:
    """Serials of devices in state 'device' on the adb server; [] if no server is running.

    The server is asked only if it already listens (ANDROID_ADB_SERVER_PORT, default
    5037): listing devices never starts an adb server as a side effect.
    """
    from slmdeploy.devices.adb import server_address

    host, port = server_address(host, port)
    try:
        with socket.create_connection((host, port), timeout=0.5):
            pass
        import adbutils

        return [d.serial for d in adbutils.AdbClient(host=host, port=port, socket_timeout=10).device_list()]
    except Exception:  # no adb server running is the normal case on a laptop without phones
        return []


def describe_all(specs: list[str]) -> list[DeviceInfo]:
    """``info()`` of each device; one that cannot be reached is listed with its error."""
    wanted = specs or ["local"] + [f"adb:{s}" for s in adb_serials()]
    infos = []
    for spec in wanted:
        try:
            device = open_device(spec)
            try:
                infos.append(device.info())
            finally:
                device.close()
        except DeviceError as err:
            parsed = parse(spec)
            infos.append(DeviceInfo(spec=str(parsed), transport=parsed.transport, serial=parsed.address,
                                    extra={"error": str(err)}))
    if not infos:
        raise DeviceError("no devices found.")
    return infos
