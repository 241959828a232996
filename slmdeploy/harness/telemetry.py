"""Device telemetry read from sysfs: thermal zones, CPU frequencies, battery.

The same files exist on Android phones, Linux boards and (partly) this host; what a
device lacks is simply absent from the sample. The sampler runs on its own thread at a
low rate so it does not disturb the timed iterations.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

SYS = Path("/sys")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    value = _read(path)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def thermal_zones(root: Path = SYS) -> dict[str, int]:
    """Zone type -> temperature in milli-degrees Celsius."""
    zones = {}
    for zone in sorted((root / "class/thermal").glob("thermal_zone*")):
        temp = _read_int(zone / "temp")
        if temp is not None:
            zones[_read(zone / "type") or zone.name] = temp
    return zones


def cpu_frequencies(root: Path = SYS, name: str = "scaling_cur_freq") -> dict[str, int]:
    """cpuN -> a cpufreq value in kHz: the current frequency, or (``scaling_max_freq``) the
    cap a thermal governor lowers when it throttles."""
    freqs = {}
    for cpu in sorted((root / "devices/system/cpu").glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
        khz = _read_int(cpu / "cpufreq" / name)
        if khz is not None:
            freqs[cpu.name] = khz
    return freqs


def battery(root: Path = SYS) -> dict[str, int]:
    supply = root / "class/power_supply/battery"
    fields = {"level_pct": "capacity", "temp_dc": "temp", "current_ua": "current_now", "voltage_uv": "voltage_now"}
    out = {}
    for key, name in fields.items():
        value = _read_int(supply / name)
        if value is not None:
            out[key] = value
    return out


def sample(root: Path = SYS) -> dict[str, Any]:
    return {"thermal_mc": thermal_zones(root), "cpu_khz": cpu_frequencies(root),
            "cpu_max_khz": cpu_frequencies(root, "scaling_max_freq"), "battery": battery(root)}


class Sampler:
    """Calls ``emit(sample)`` every ``interval_ms`` until stopped (0 disables)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None], interval_ms: int, clock: Callable[[], int]) -> None:
        self._emit = emit
        self._interval = interval_ms / 1000
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)

    def __enter__(self) -> "Sampler":
        if self._interval > 0:
            # The first sample is taken now, before load: a run too short for the thread to
            # get scheduled still has one.
            self._emit_sample()
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _emit_sample(self) -> None:
        self._emit({"type": "telemetry", "t_ns": self._clock(), **sample()})

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._emit_sample()


def now_ns() -> int:
    return time.monotonic_ns()
