"""Device facts and telemetry read over any device shell (adb, adb-direct, ssh, local).

One shell round trip runs ``FACTS_SCRIPT``, which prints tagged sections (getprop,
cpufreq, /proc/meminfo, df, battery, thermal zones, Android's thermal status, uname);
``parse_facts`` turns them into a dict and ``android_info``/``linux_info`` into a
``DeviceInfo``. ``read_telemetry`` samples the same sysfs files the harness samples
(temperatures, CPU frequencies, battery) for cooldown waits and ``slmdeploy devices``.

Everything is POSIX sh that toybox (Android), busybox and coreutils all accept; what
a device lacks (no battery on a board, no getprop on Linux) is simply absent.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from slmdeploy.devices.base import Device, DeviceInfo
from slmdeploy.devices.deploy import parse_df_available

# Android's thermal status levels (PowerManager.THERMAL_STATUS_*), as dumpsys prints the number.
THERMAL_STATUS = ("none", "light", "moderate", "severe", "critical", "emergency", "shutdown")
PLAUSIBLE_MC = (-40_000, 150_000)  # zones outside this report nonsense (disabled sensors)
CAPPED_RATIO = 0.95  # scaling_max_freq below this share of cpuinfo_max_freq: cpufreq is capped

_CPU = "/sys/devices/system/cpu"
_BATTERY = "/sys/class/power_supply/battery"
_TELEMETRY_SCRIPT = f"""
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] && echo "thermal $(cat "$z/type" 2>/dev/null | tr ' ' _) $(cat "$z/temp" 2>/dev/null)"
done
for f in {_CPU}/cpu[0-9]*/cpufreq/scaling_cur_freq; do
  [ -r "$f" ] && echo "cur $f $(cat "$f" 2>/dev/null)"
done
for n in capacity temp current_now voltage_now; do
  [ -r {_BATTERY}/$n ] && echo "battery $n $(cat {_BATTERY}/$n 2>/dev/null)"
done
true
"""


def facts_script(workdir: str) -> str:
    q = shlex.quote(workdir)
    return f"""
echo '@@getprop'; command -v getprop >/dev/null 2>&1 && getprop 2>/dev/null
echo '@@uname'; uname -s 2>/dev/null; uname -r 2>/dev/null; uname -m 2>/dev/null; hostname 2>/dev/null
echo '@@present'; cat {_CPU}/present 2>/dev/null
echo '@@cpus'
for c in {_CPU}/cpu[0-9]*; do
  [ -d "$c" ] || continue
  echo "${{c##*/}} $(cat "$c/cpufreq/cpuinfo_max_freq" 2>/dev/null || echo -) $(cat "$c/cpufreq/scaling_max_freq" 2>/dev/null || echo -)"
done
echo '@@meminfo'; cat /proc/meminfo 2>/dev/null
echo '@@df'; mkdir -p {q} 2>/dev/null; df -k {q} 2>/dev/null
echo '@@battery'
for n in capacity temp current_now voltage_now status; do
  [ -r {_BATTERY}/$n ] && echo "$n $(cat {_BATTERY}/$n 2>/dev/null)"
done
echo '@@thermal'
for z in /sys/class/thermal/thermal_zone*; do
  [ -r "$z/temp" ] && echo "$(cat "$z/type" 2>/dev/null | tr ' ' _) $(cat "$z/temp" 2>/dev/null)"
done
echo '@@thermalservice'
command -v dumpsys >/dev/null 2>&1 && dumpsys thermalservice 2>/dev/null | grep -i -m 1 'thermal status'
echo '@@osrelease'; cat /etc/os-release 2>/dev/null
echo '@@model'; cat /proc/device-tree/model 2>/dev/null | tr -d '\\000'; echo
echo '@@cpuinfo'; grep -i -m 3 -E '^(model name|hardware|cpu part)' /proc/cpuinfo 2>/dev/null
true
"""


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line.rstrip("\r"))
    return out


_PROP = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def parse_facts(text: str) -> dict[str, Any]:
    """The facts script's output -> plain values (absent ones are None / empty)."""
    s = _sections(text)
    props = {m.group(1): m.group(2) for m in (_PROP.match(l) for l in s.get("getprop", [])) if m}
    uname = s.get("uname", []) + ["", "", "", ""]
    by_number = {}
    for line in s.get("cpus", []):
        parts = line.split()
        if len(parts) == 3 and parts[0][3:].isdigit():
            by_number[int(parts[0][3:])] = (int(parts[0][3:]), _int(parts[1]), _int(parts[2]))
    cpus = [by_number[n] for n in sorted(by_number)]
    present = _cpu_list(" ".join(s.get("present", [])))
    meminfo = {}
    for line in s.get("meminfo", []):
        name, _, rest = line.partition(":")
        if rest.split():
            meminfo[name.strip()] = _int(rest.split()[0])
    battery = {}
    for line in s.get("battery", []):
        name, _, value = line.partition(" ")
        battery[name] = value.strip()
    zones = {}
    for line in s.get("thermal", []):
        name, _, value = line.rpartition(" ")
        mc = _int(value)
        if name and mc is not None:
            zones[_unique(zones, name)] = mc
    status_line = " ".join(s.get("thermalservice", []))
    status_num = re.search(r"status\s*:?\s*(\d+)", status_line, re.I)
    os_release = dict(
        (k, v.strip('"')) for k, _, v in (l.partition("=") for l in s.get("osrelease", [])) if k
    )
    cpuinfo = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in s.get("cpuinfo", []))}
    return {
        "props": props,
        "os": uname[0] or None,
        "kernel": uname[1] or None,
        "machine": uname[2] or None,
        "hostname": uname[3] or None,
        "cpus": cpus,
        "present": present,
        "meminfo": meminfo,
        "free_kib": parse_df_available("\n".join(s.get("df", []))),
        "battery": battery,
        "thermal_mc": zones,
        "thermal_status": THERMAL_STATUS[int(status_num.group(1))]
        if status_num and int(status_num.group(1)) < len(THERMAL_STATUS) else None,
        "os_release": os_release,
        "board_model": "".join(s.get("model", [])).strip() or None,
        "cpuinfo": cpuinfo,
    }


def _cpu_list(text: str) -> list[int]:
    """A kernel CPU list ("0-3,6,8-9") -> [0, 1, 2, 3, 6, 8, 9]; [] if unreadable."""
    out: list[int] = []
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        if not lo.strip().isdigit() or (hi and not hi.strip().isdigit()):
            return []
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def _unique(existing: dict[str, Any], name: str) -> str:
    if name not in existing:
        return name
    n = 2
    while f"{name}#{n}" in existing:
        n += 1
    return f"{name}#{n}"


def plausible(zones: dict[str, int]) -> dict[str, int]:
    lo, hi = PLAUSIBLE_MC
    return {k: v for k, v in zones.items() if lo < v < hi and v != 0}


def _thermal_status(facts: dict[str, Any]) -> tuple[str | None, str | None]:
    """Android's own status when dumpsys gives it, else whether cpufreq is capped."""
    if facts["thermal_status"]:
        return facts["thermal_status"], "thermalservice"
    capped = [(mx, cap) for _, mx, cap in facts["cpus"] if mx and cap]
    if not capped:
        return None, None
    throttled = any(cap < CAPPED_RATIO * mx for mx, cap in capped)
    return ("throttled" if throttled else "none"), "cpufreq"


def _common(facts: dict[str, Any], info: DeviceInfo) -> DeviceInfo:
    cpus = facts["cpus"]
    info.cpu_cores = len(facts["present"]) or len(cpus) or None
    info.cpu_max_khz = [mx for _, mx, _ in cpus if mx]
    info.ram_kib = facts["meminfo"].get("MemTotal")
    info.free_storage_kib = facts["free_kib"]
    battery = facts["battery"]
    info.battery_pct = _int(battery.get("capacity"))
    temp = _int(battery.get("temp"))
    info.battery_temp_c = temp / 10 if temp is not None else None
    zones = plausible(facts["thermal_mc"])
    info.thermal_max_c = max(zones.values()) / 1000 if zones else None
    info.thermal_status, source = _thermal_status(facts)
    if source:
        info.extra["thermal_status_source"] = source
    info.extra["thermal_c"] = {k: v / 1000 for k, v in zones.items()}
    if battery.get("status"):
        info.extra["battery_status"] = battery["status"]
    if battery.get("current_now"):
        info.extra["battery_current_ua"] = _int(battery["current_now"])
    return info


def collect_facts(device: Device, timeout: float = 60.0) -> dict[str, Any]:
    result = device.shell(facts_script(device.workdir), timeout=timeout)
    return parse_facts(result.stdout)


def android_info(device: Device, serial: str, timeout: float = 60.0) -> DeviceInfo:
    """``DeviceInfo`` of an Android device from getprop, sysfs, /proc and df."""
    facts = collect_facts(device, timeout)
    props = facts["props"]
    if not props:
        return linux_info(device, serial, facts=facts)
    abi = props.get("ro.product.cpu.abi") or None
    info = DeviceInfo(
        spec=device.spec,
        transport=getattr(device, "transport", "?"),
        serial=serial,
        model=props.get("ro.product.model") or None,
        manufacturer=props.get("ro.product.manufacturer") or None,
        soc=props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware") or None,
        abi=abi,
        exec_abi=props.get("ro.slmdeploy.exec_abi") or abi,
        os="Android",
        os_version=props.get("ro.build.version.release") or None,
        emulated=props.get("ro.slmdeploy.emulated") == "1",
    )
    info.extra.update({
        k: v for k, v in (
            ("sdk", props.get("ro.build.version.sdk")),
            ("serialno", props.get("ro.serialno")),
            ("fingerprint", props.get("ro.build.fingerprint")),
            ("soc_manufacturer", props.get("ro.soc.manufacturer")),
            ("platform", props.get("ro.board.platform")),
            ("abilist", props.get("ro.product.cpu.abilist")),
            ("kernel", facts["kernel"]),
        ) if v
    })
    if info.emulated:
        info.extra["emulator_profile"] = props.get("ro.slmdeploy.profile")
    return _common(facts, info)


def linux_info(device: Device, serial: str, facts: dict[str, Any] | None = None, timeout: float = 60.0) -> DeviceInfo:
    """``DeviceInfo`` of a Linux board (Jetson, Raspberry Pi ...) from sysfs, /proc and df."""
    facts = facts or collect_facts(device, timeout)
    machine = facts["machine"]
    cpuinfo = facts["cpuinfo"]
    release = facts["os_release"]
    info = DeviceInfo(
        spec=device.spec,
        transport=getattr(device, "transport", "?"),
        serial=serial,
        model=facts["board_model"] or cpuinfo.get("model name") or facts["hostname"],
        soc=cpuinfo.get("hardware") or cpuinfo.get("model name"),
        abi=machine,
        exec_abi=machine,  # a glibc Linux binary: Android (bionic) builds do not run here
        os=release.get("PRETTY_NAME") or facts["os"],
        os_version=facts["kernel"],
    )
    if facts["hostname"]:
        info.extra["hostname"] = facts["hostname"]
    return _common(facts, info)


def parse_telemetry(text: str) -> dict[str, Any]:
    """``_TELEMETRY_SCRIPT`` output -> a sample in the trace's telemetry format."""
    zones: dict[str, int] = {}
    cpus: dict[str, int] = {}
    battery: dict[str, int] = {}
    names = {"capacity": "level_pct", "temp": "temp_dc", "current_now": "current_ua", "voltage_now": "voltage_uv"}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        name, _, value = rest.rpartition(" ")
        number = _int(value)
        if number is None or not name:
            continue
        if kind == "thermal":
            zones[_unique(zones, name)] = number
        elif kind == "cur":
            cpu = name.split("/")[-3] if name.count("/") >= 3 else name
            cpus[cpu] = number
        elif kind == "battery" and name in names:
            battery[names[name]] = number
    ordered = dict(sorted(cpus.items(), key=lambda kv: int(kv[0][3:]) if kv[0][3:].isdigit() else 0))
    return {"thermal_mc": zones, "cpu_khz": ordered, "battery": battery}


def read_telemetry(device: Device, timeout: float = 30.0) -> dict[str, Any]:
    """Temperatures (milli-°C), CPU frequencies (kHz) and battery, read over the device shell."""
    return parse_telemetry(device.shell(_TELEMETRY_SCRIPT, timeout=timeout).stdout)


def max_temp_c(sample: dict[str, Any]) -> float | None:
    """The hottest plausible thermal zone of a telemetry sample, or the battery if no zone."""
    zones = plausible(sample.get("thermal_mc", {}))
    if zones:
        return max(zones.values()) / 1000
    temp_dc = sample.get("battery", {}).get("temp_dc")
    return temp_dc / 10 if temp_dc is not None else None
