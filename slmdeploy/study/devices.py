"""Which devices a study runs on: named specs, every phone on the adb server, a lab inventory.

Devices are deduplicated by physical identity (``adb:`` and ``adb-direct:`` of one phone are
one device); labels from the study file and the inventory travel into every run record.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Callable

from slmdeploy.devices.spec import identity, parse
from slmdeploy.errors import DeviceError
from slmdeploy.study.spec import DeviceEntry, DeviceSelection, StudyError


def adb_devices() -> list[str]:
    """``adb:SERIAL`` of every device in state "device" on this host's adb server."""
    from slmdeploy.devices.discovery import adb_serials

    return [f"adb:{serial}" for serial in adb_serials()]


def read_inventory(path: Path) -> list[DeviceEntry]:
    """A lab's device list: ``[[device]] spec = "adb:SERIAL"  labels = { shelf = "A3" }``."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"inventory {path} is not valid TOML: {err}.") from None
    items = data.get("device", [])
    if not isinstance(items, list):
        raise StudyError(f"inventory {path}: device must be an array of tables ([[device]] spec = \"...\").")
    entries = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("spec"), str):
            raise StudyError(f"inventory {path}: device[{i}].spec is required (a device spec string).")
        labels = item.get("labels", {})
        if not isinstance(labels, dict):
            raise StudyError(f"inventory {path}: device[{i}].labels must be a table of label = value.")
        entries.append(DeviceEntry(item["spec"], {str(k): str(v) for k, v in labels.items()}))
    return entries


def resolve_devices(selection: DeviceSelection, where: str = "study",
                    discover: Callable[[], list[str]] | None = None) -> list[DeviceEntry]:
    """The study's devices in order, one per physical device; specs are checked here.

    ``discover`` lists the devices ``adb = "all"`` means: by default every phone this host's
    adb server lists; a Ray study asks its cluster instead.
    """
    entries = list(selection.specs)
    if selection.inventory is not None:
        wanted = selection.labels.items()
        entries += [e for e in read_inventory(selection.inventory) if wanted <= e.labels.items()]
    if selection.adb_all:
        entries += [DeviceEntry(spec, {}) for spec in (discover or adb_devices)()]
    seen: dict[str, DeviceEntry] = {}
    for i, entry in enumerate(entries):
        try:
            spec = str(parse(entry.spec))
        except DeviceError as err:
            raise StudyError(f"{where}: devices: {err}") from None
        key = identity(spec)
        if key in seen:  # the same phone named twice: merge its labels
            seen[key] = DeviceEntry(seen[key].spec, {**seen[key].labels, **entry.labels})
        else:
            seen[key] = DeviceEntry(spec, dict(entry.labels))
    if not seen:
        raise StudyError(f"{where}: no devices: the adb server lists none and no spec or inventory entry matched; "
                         "connect a phone (adb devices) or name devices in [devices] specs.")
    return list(seen.values())
