"""Which devices are there: this host, every phone the adb server knows, and named ones."""

from __future__ import annotations

from slmdeploy.devices import open_device
from slmdeploy.devices.base import DeviceInfo
from slmdeploy.errors import DeviceError


def adb_serials() -> list[str]:
    """Serials of devices in state 'device' on the adb server; [] if no server is reachable."""
    try:
        import adbutils

        return [d.serial for d in adbutils.AdbClient().device_list()]
    except Exception:  # no adb server running is the normal case on a laptop without phones
        return []


def describe_all(specs: list[str]) -> list[DeviceInfo]:
    wanted = specs or ["local"] + [f"adb:{s}" for s in adb_serials()]
    infos = []
    for spec in wanted:
        device = open_device(spec)
        try:
            infos.append(device.info())
        finally:
            device.close()
    if not infos:
        raise DeviceError("no devices found.")
    return infos
