"""Device profiles: the data that makes the emulated phone look like a real model.

A profile is JSON under ``profiles/`` (getprop values, CPU clusters, RAM, thermal
zones, battery). Code never hard-codes a phone; tests and users pick a profile or
hand in a modified copy (``dataclasses.replace``) to tune e.g. the heating model.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROFILE_DIR = Path(__file__).with_name("profiles")

# uname machine -> Android ABI name, so an emulated phone can say what it executes.
_HOST_ABIS = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "arm64-v8a",
    "arm64": "arm64-v8a",
    "armv7l": "armeabi-v7a",
    "i686": "x86",
    "i386": "x86",
}


def host_abi() -> str:
    """The Android ABI name of this host, i.e. what binaries built here are."""
    machine = platform.machine().lower()
    return _HOST_ABIS.get(machine, machine)


@dataclass(frozen=True)
class Cluster:
    """Identical cores sharing a cpufreq policy."""

    core: str  # e.g. "Cortex-X3"
    part: str  # MIDR part number as /proc/cpuinfo prints it, e.g. "0xd4e"
    count: int
    max_khz: int
    min_khz: int


@dataclass(frozen=True)
class ThermalZone:
    type: str
    coupling: float  # share of the SoC's rise above ambient this sensor sees


@dataclass(frozen=True)
class ThermalParams:
    """First-order heating model: dT/dt = heat * busy_cpus - (T - ambient) / tau."""

    ambient_c: float = 30.0
    heat_c_per_cpu_s: float = 0.3
    cooling_tau_s: float = 60.0
    trip_c: float = 85.0
    hysteresis_c: float = 5.0
    throttle_ratio: float = 0.6  # scaling_max_freq while throttled, as a share of max


@dataclass(frozen=True)
class Battery:
    capacity: int
    temp_dc: int  # tenths of a degree C, as power_supply reports it
    current_now_ua: int
    voltage_now_uv: int
    status: str
    charge_full_design_uah: int
    technology: str = "Li-ion"
    health: str = "Good"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    props: dict[str, str]
    clusters: tuple[Cluster, ...]
    ram_bytes: int
    mem_total_kb: int
    storage_bytes: int
    thermal_zones: tuple[ThermalZone, ...]
    thermal: ThermalParams = field(default_factory=ThermalParams)
    battery: Battery | None = None
    exec_abi: str | None = None  # None: the host's ABI (what the emulator can run)
    bogomips: float = 49.15  # from the arch timer: 24.576 MHz (Tensor) -> 49.15, 19.2 MHz (Qualcomm) -> 38.40

    @property
    def cpu_count(self) -> int:
        return sum(c.count for c in self.clusters)

    @property
    def model(self) -> str:
        return self.props.get("ro.product.model", self.name)

    def cores(self) -> list[tuple[int, Cluster]]:
        """(cpu number, cluster) for every core, numbered like the kernel: little first."""
        out: list[tuple[int, Cluster]] = []
        for cluster in self.clusters:
            first = len(out)
            out.extend((first + i, cluster) for i in range(cluster.count))
        return out

    def with_thermal(self, **changes: Any) -> Profile:
        """A copy with some heating-model parameters changed (tests use fast heating)."""
        return replace(self, thermal=replace(self.thermal, **changes))


def _build(cls: type, data: dict[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {sorted(unknown)}")
    return cls(**data)


def profile_from_dict(data: dict[str, Any]) -> Profile:
    data = dict(data)
    data["clusters"] = tuple(_build(Cluster, c) for c in data["clusters"])
    data["thermal_zones"] = tuple(_build(ThermalZone, z) for z in data["thermal_zones"])
    data["thermal"] = _build(ThermalParams, data.get("thermal", {}))
    if data.get("battery") is not None:
        data["battery"] = _build(Battery, data["battery"])
    data["props"] = {str(k): str(v) for k, v in data["props"].items()}
    return _build(Profile, data)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (``pixel8``) or a JSON file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no emulator profile {str(name_or_path)!r}; shipped: {', '.join(available_profiles())}"
        )
    return profile_from_dict(json.loads(path.read_text()))
