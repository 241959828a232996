"""Wait until a device has cooled down before a measured run.

A phone that just ran a benchmark (or sat in the sun) starts the next run throttled;
its numbers are then not comparable. ``wait_until_cool`` polls the device's hottest
plausible thermal zone (the battery sensor if it has no zones) over its shell until it
is below the limit, and says how long that took. A device without temperature sensors
is not waited for (the result says so).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from slmdeploy.devices.android import max_temp_c, read_telemetry
from slmdeploy.devices.base import Device
from slmdeploy.errors import DeviceError

DEFAULT_TIMEOUT = 600.0
DEFAULT_POLL = 1.0  # a telemetry read costs a few ms of the device's CPU: negligible heat


def wait_until_cool(
    device: Device,
    below_c: float,
    timeout: float = DEFAULT_TIMEOUT,
    poll: float = DEFAULT_POLL,
    *,
    on_wait: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Block until ``device`` is below ``below_c`` °C; DeviceError after ``timeout`` seconds.

    Returns ``{"below_c", "start_c", "end_c", "waited_s", "reached"}`` (``reached`` is None
    when the device has no temperature to read). ``on_wait(temp_c)`` is called before each
    pause, for progress display.
    """
    start = clock()
    first: float | None = None
    while True:
        temp = max_temp_c(read_telemetry(device))
        if temp is None:
            return {"below_c": below_c, "start_c": None, "end_c": None, "waited_s": 0.0, "reached": None}
        first = temp if first is None else first
        waited = clock() - start
        if temp < below_c:
            return {"below_c": below_c, "start_c": first, "end_c": temp, "waited_s": round(waited, 3), "reached": True}
        if waited >= timeout:
            raise DeviceError(
                f"{device.spec} is still at {temp:.1f} °C after {timeout:.0f} s of cooldown (limit {below_c:.1f} °C); "
                "let it cool (off the charger, out of the sun) or raise --cooldown-below / --cooldown-timeout."
            )
        if on_wait:
            on_wait(temp)
        sleep(min(poll, max(timeout - waited, 0.0)))
