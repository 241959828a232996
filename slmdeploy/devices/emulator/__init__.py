"""An emulated Android phone that the real adb client accepts.

``EmulatedPhone`` listens on a loopback port and speaks adbd's side of the adb
protocol, so ``adb connect 127.0.0.1:PORT`` then ``adb shell/push/pull`` work
without hardware. Commands run on this host inside a sandbox that looks like the
profiled phone (getprop, /proc/meminfo, /sys cpufreq/thermal/battery). See
docs/emulated-phone.md.
"""

from __future__ import annotations

from slmdeploy.devices.emulator.daemon import CommandResult, EmulatedPhone
from slmdeploy.devices.emulator.faults import FaultPlan
from slmdeploy.devices.emulator.profiles import Profile, available_profiles, host_abi, load_profile

__all__ = [
    "CommandResult",
    "EmulatedPhone",
    "FaultPlan",
    "Profile",
    "available_profiles",
    "host_abi",
    "load_profile",
]
