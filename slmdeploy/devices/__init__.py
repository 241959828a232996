"""Devices: where artifacts run. One protocol (``base.Device``), one module per transport."""

from __future__ import annotations

from slmdeploy.devices.base import Device, DeviceInfo, ShellResult
from slmdeploy.devices.spec import DeviceSpec, parse

__all__ = ["Device", "DeviceInfo", "DeviceSpec", "ShellResult", "open_device", "parse"]


def open_device(spec: str | DeviceSpec | Device, **options) -> Device:
    """A connected device for ``spec`` (see ``devices.spec``)."""
    if not isinstance(spec, (str, DeviceSpec)):
        return spec
    parsed = parse(spec) if isinstance(spec, str) else spec
    if parsed.transport == "local":
        from slmdeploy.devices.local import LocalDevice

        return LocalDevice(**options)
    if parsed.transport == "adb":
        from slmdeploy.devices.adb import AdbDevice

        return AdbDevice(parsed.address, **options)
    if parsed.transport == "adb-direct":
        from slmdeploy.devices.adb_direct import AdbDirectDevice

        return AdbDirectDevice(parsed.address, **options)
    from slmdeploy.devices.ssh import SshDevice

    return SshDevice(parsed.address, **options)
