"""The phone's filesystem on the host, and how commands get the phone's view of it.

The sandbox root holds what a phone keeps (``data/``, ``sdcard/``, ``system/``) and
generated state files (``proc/meminfo``, ``sys/...``) rendered from the profile.
Commands see them at the device paths in one of two ways:

* ``namespace`` (preferred, needs root/CAP_SYS_ADMIN): a private mount namespace
  where the sandbox is bound over ``/data``, ``/proc/meminfo``, ``/sys/class`` ...;
  the host stays untouched and the host's binaries run unchanged.
* ``rewrite`` (fallback): device-path prefixes in the command *text* are rewritten
  to sandbox paths. Paths a program builds at run time are not seen (documented).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable

from slmdeploy.devices.emulator.namespace import Mount, MountNamespace, namespaces_supported
from slmdeploy.devices.emulator.profiles import Profile, host_abi

log = logging.getLogger(__name__)

# device path -> (sandbox path, writable). Longest prefix wins.
DEVICE_PATHS: dict[str, tuple[str, bool]] = {
    "/data": ("data", True),
    "/sdcard": ("sdcard", True),
    "/storage/emulated/0": ("sdcard", True),
    "/storage/self/primary": ("sdcard", True),
    "/system": ("system", False),
    "/proc/meminfo": ("proc/meminfo", False),
    "/proc/cpuinfo": ("proc/cpuinfo", False),
    "/sys/devices/system/cpu": ("sys/devices/system/cpu", False),
    "/sys/class": ("sys/class", False),
}
# What the namespace mounts (the /storage aliases are symlinks to /sdcard there).
_NAMESPACE_MOUNTS = ["/data", "/sdcard", "/system", "/proc/meminfo", "/proc/cpuinfo",
                     "/sys/devices/system/cpu", "/sys/class"]
_NAMESPACE_SYMLINKS = {"/storage/emulated/0": "../../sdcard", "/storage/self/primary": "../../sdcard"}

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DATA_AREAS = ("data", "sdcard")  # what the storage quota covers (sdcard lives on /data on Android)

_GETPROP = r"""#!/bin/sh
# getprop for the slmdeploy emulated phone: properties live in /system/build.prop.
props="$(dirname -- "$0")/../build.prop"
if [ $# -eq 0 ]; then
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    printf '[%s]: [%s]\n' "${line%%=*}" "${line#*=}"
  done < "$props"
  exit 0
fi
while IFS= read -r line; do
  case "$line" in "$1="*) printf '%s\n' "${line#*=}"; exit 0 ;; esac
done < "$props"
printf '%s\n' "${2:-}"
"""

# dumpsys for the emulated phone: only `dumpsys thermalservice`, in Android's own format, from
# the status the thermal model writes (PowerManager.THERMAL_STATUS_*: 0 none ... 6 shutdown).
_DUMPSYS = r"""#!/bin/sh
case "$1" in
  thermalservice)
    status=$(cat "$(dirname -- "$0")/../thermal_status" 2>/dev/null || echo 0)
    printf 'IsStatusOverride: false\nThermalEventListeners:\n\tcallbacks: 0\nThermal Status: %s\n' "$status" ;;
  *) echo "Can't find service: $1" >&2; exit 1 ;;
esac
"""

# ARMv8.2+ baseline the profiled cores (A5xx/A7xx/X-series of 2022-2024) all report.
_CPU_FEATURES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                 "jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 asimdfhm dit uscat ilrcpc "
                 "flagm ssbs sb paca pacg dcpodp flagm2 frint i8mm bf16 bti")


class Sandbox:
    """Files and process environment of one emulated phone."""

    def __init__(self, root: Path, profile: Profile, *, isolation: str = "auto",
                 extra_props: dict[str, str] | None = None) -> None:
        if isolation not in ("auto", "namespace", "rewrite"):
            raise ValueError(f"isolation must be auto, namespace or rewrite, not {isolation!r}")
        self.root = root.resolve()
        self.profile = profile
        self.requested_isolation = isolation
        self.extra_props = dict(extra_props or {})
        self.mode = "rewrite"
        self._ns: MountNamespace | None = None

    # -- layout --------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.root / rel

    def props(self) -> dict[str, str]:
        props = dict(self.profile.props)
        props.update({
            "ro.slmdeploy.emulated": "1",
            "ro.slmdeploy.exec_abi": self.profile.exec_abi or host_abi(),
            "ro.slmdeploy.profile": self.profile.name,
            "ro.boot.serialno": props.get("ro.serialno", ""),
            "sys.boot_completed": "1",
            "dev.bootcomplete": "1",
        })
        props.update(self.extra_props)
        return dict(sorted(props.items()))

    def create(self) -> None:
        """Make the persistent tree (kept across restarts) and render the generated files."""
        for rel in ("data/local/tmp", "data/misc/adb", "sdcard/Download", "system/bin", ".state"):
            self.path(rel).mkdir(parents=True, exist_ok=True)
        for rel in ("proc", "sys"):
            shutil.rmtree(self.path(rel), ignore_errors=True)
        for rel in ("sys/class/thermal", "sys/class/power_supply"):  # present even with no sensors
            self.path(rel).mkdir(parents=True)
        self.write_state("system/build.prop", "".join(f"{k}={v}\n" for k, v in self.props().items()))
        self.write_state("system/bin/getprop", _GETPROP, mode=0o755)
        self.write_state("system/bin/dumpsys", _DUMPSYS, mode=0o755)
        self.write_state("system/thermal_status", "0\n")
        sh = self.path("system/bin/sh")
        if not sh.is_symlink():
            sh.symlink_to("/bin/sh")
        self.write_state("proc/meminfo", render_meminfo(self.profile))
        self.write_state("proc/cpuinfo", render_cpuinfo(self.profile))
        cpus = f"0-{self.profile.cpu_count - 1}"
        for name in ("possible", "present", "online"):
            self.write_state(f"sys/devices/system/cpu/{name}", cpus + "\n")
        top = max(c.max_khz for c in self.profile.clusters)
        first = 0
        for cluster in self.profile.clusters:
            related = " ".join(str(first + i) for i in range(cluster.count))
            for cpu in range(first, first + cluster.count):
                base = f"sys/devices/system/cpu/cpu{cpu}"
                if cpu:
                    self.write_state(f"{base}/online", "1\n")
                self.write_state(f"{base}/cpu_capacity", f"{round(1024 * cluster.max_khz / top)}\n")
                for name, value in (
                    ("cpuinfo_max_freq", cluster.max_khz), ("cpuinfo_min_freq", cluster.min_khz),
                    ("scaling_max_freq", cluster.max_khz), ("scaling_min_freq", cluster.min_khz),
                    ("scaling_cur_freq", cluster.min_khz), ("scaling_governor", "schedutil"),
                    ("related_cpus", related), ("affected_cpus", related),
                ):
                    self.write_state(f"{base}/cpufreq/{name}", f"{value}\n")
            first += cluster.count
        ambient_mc = round(self.profile.thermal.ambient_c * 1000)
        for i, zone in enumerate(self.profile.thermal_zones):
            base = f"sys/class/thermal/thermal_zone{i}"
            for name, value in (("type", zone.type), ("temp", ambient_mc), ("mode", "enabled"),
                                ("policy", "step_wise")):
                self.write_state(f"{base}/{name}", f"{value}\n")
        battery = self.profile.battery
        if battery is not None:
            for name, value in (
                ("type", "Battery"), ("present", 1), ("capacity", battery.capacity),
                ("temp", battery.temp_dc), ("current_now", battery.current_now_ua),
                ("voltage_now", battery.voltage_now_uv), ("status", battery.status),
                ("health", battery.health), ("technology", battery.technology),
                ("charge_full_design", battery.charge_full_design_uah),
            ):
                self.write_state(f"sys/class/power_supply/battery/{name}", f"{value}\n")

    def write_state(self, rel: str, text: str, mode: int = 0o644) -> None:
        """Atomically replace a generated file, so readers never see it half written."""
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path(".state") / uuid.uuid4().hex
        tmp.parent.mkdir(exist_ok=True)
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, target)

    def data_usage(self) -> int:
        """Bytes stored in /data and /sdcard (what the storage quota counts)."""
        total = 0
        for area in DATA_AREAS:
            for dirpath, _dirs, files in os.walk(self.path(area)):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, name)).st_size
                    except OSError:
                        pass
        return total

    # -- isolation -------------------------------------------------------------------
    def start(self) -> None:
        """Pick and start the isolation mode (namespace if the host allows it)."""
        if self.requested_isolation != "rewrite":
            try:
                self._start_namespace()
                self.mode = "namespace"
                return
            except OSError as exc:
                if self.requested_isolation == "namespace":
                    raise
                log.warning("%s; device paths are rewritten in command text only", exc)
        self.mode = "rewrite"

    def _start_namespace(self) -> None:
        if not namespaces_supported():
            raise OSError("mount namespaces are not permitted here (need root or CAP_SYS_ADMIN, unshare, nsenter)")
        mounts = [Mount(self.path(DEVICE_PATHS[p][0]), p, read_only=not DEVICE_PATHS[p][1])
                  for p in _NAMESPACE_MOUNTS]
        ns = MountNamespace(self.path(".nsroot"), mounts, _NAMESPACE_SYMLINKS)
        ns.start()
        self._ns = ns

    def stop(self) -> None:
        ns, self._ns = self._ns, None
        if ns is not None:
            ns.stop()

    def restart(self) -> None:
        """A reboot: a fresh namespace (empty /tmp); /data and /sdcard stay."""
        self.stop()
        self.start()

    # -- device paths ------------------------------------------------------------------
    def host_path(self, device_path: str) -> Path:
        """Where the file the phone calls ``device_path`` is, as the host can open it."""
        path = _normalize(device_path)
        if self._ns is not None:
            return Path(str(self._ns.root_path) + path)
        prefix = _match_prefix(path)
        if prefix is None:
            return Path(path)
        rel, _writable = DEVICE_PATHS[prefix]
        return self.path(rel + path[len(prefix):])

    def is_writable(self, device_path: str) -> bool:
        """In rewrite mode only the phone's own areas may be written (the host is off limits)."""
        if self._ns is not None:
            return True  # the namespace's read-only mounts decide
        prefix = _match_prefix(_normalize(device_path))
        return prefix is not None and DEVICE_PATHS[prefix][1]

    def in_data_area(self, device_path: str) -> bool:
        prefix = _match_prefix(_normalize(device_path))
        return prefix is not None and DEVICE_PATHS[prefix][0] in DATA_AREAS

    def rewrite(self, command: str) -> str:
        """Device paths in ``command`` -> sandbox paths (rewrite mode only)."""
        return _PATH_RE.sub(lambda m: str(self.path(DEVICE_PATHS[m.group(1)][0])), command)

    # -- processes ---------------------------------------------------------------------
    def environment(self, term: str | None) -> dict[str, str]:
        """adbd's shell environment, with paths as this isolation mode reaches them."""
        ns = self.mode == "namespace"

        def dev(path: str) -> str:
            return path if ns else str(self.host_path(path))

        env = {
            "PATH": f"{dev('/system/bin')}:{dev('/system/xbin')}:{HOST_PATH}",
            "HOME": "/" if ns else str(self.root),
            "TMPDIR": dev("/data/local/tmp"),
            "ANDROID_DATA": dev("/data"),
            "ANDROID_ROOT": dev("/system"),
            "ANDROID_STORAGE": "/storage" if ns else str(self.root),
            "EXTERNAL_STORAGE": dev("/sdcard"),
            "HOSTNAME": self.profile.props.get("ro.product.device", "localhost"),
            "USER": "root",
            "LOGNAME": "root",
            "SHELL": dev("/system/bin/sh"),
            "SLMDEPLOY_EMULATED": "1",
        }
        if term:
            env["TERM"] = term
        if not ns:
            env["SLMDEPLOY_SANDBOX_ROOT"] = str(self.root)
        return env

    def popen(self, command: str | None, *, term: str | None = None,
              wrap: Callable[[list[str]], list[str]] | None = None, **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``/bin/sh -c command`` (an interactive shell if None) as the phone runs it.

        Each command gets its own session (pgid == pid) so it can be killed as a group.
        ``wrap`` rewrites the final argv (e.g. to join the phone's CPU-share cgroup first).
        """
        if command is None:
            argv = ["/bin/sh", "-i"]
        elif self.mode == "namespace":
            argv = ["/bin/sh", "-c", command]
        else:
            argv = ["/bin/sh", "-c", self.rewrite(command)]
        cwd: str | None = None
        if self.mode == "namespace":
            if self._ns is None:
                raise OSError("the phone is rebooting")  # never run a phone command on the bare host
            argv = self._ns.wrap(argv)
        else:
            cwd = str(self.root)
        if wrap is not None:
            argv = wrap(argv)
        return subprocess.Popen(argv, cwd=cwd, env=self.environment(term), start_new_session=True,
                                **kwargs)


def _normalize(device_path: str) -> str:
    """Absolute and without ``..``: a phone path resolves from ``/`` and cannot climb above it."""
    return posixpath.normpath("/" + device_path.lstrip("/"))


def _match_prefix(path: str) -> str | None:
    for prefix in sorted(DEVICE_PATHS, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return None


# A device path in command text: not preceded by a path character, ended by a separator.
_PATH_RE = re.compile(
    r"(?<![\w./-])("
    + "|".join(re.escape(p) for p in sorted(DEVICE_PATHS, key=len, reverse=True))
    + r")(?=[/\s'\";|&)<>:`]|$)"
)


def render_meminfo(profile: Profile) -> str:
    """A plausible idle-phone /proc/meminfo scaled from MemTotal."""
    total = profile.mem_total_kb
    rows = [
        ("MemTotal", total), ("MemFree", total * 6 // 100), ("MemAvailable", total * 48 // 100),
        ("Buffers", total * 3 // 1000), ("Cached", total * 40 // 100), ("SwapCached", 8192),
        ("Active", total * 33 // 100), ("Inactive", total * 30 // 100),
        ("Unevictable", total * 2 // 100), ("Mlocked", total * 2 // 100),
        ("SwapTotal", total // 2), ("SwapFree", total * 45 // 100),
        ("Dirty", 512), ("Writeback", 0), ("AnonPages", total * 22 // 100),
        ("Mapped", total * 15 // 100), ("Shmem", total * 1 // 100),
        ("KReclaimable", total * 3 // 100), ("Slab", total * 5 // 100),
        ("SReclaimable", total * 2 // 100), ("SUnreclaim", total * 3 // 100),
        ("KernelStack", 65536), ("PageTables", total * 2 // 100),
        ("CommitLimit", total), ("Committed_AS", total * 19 // 10),
        ("VmallocTotal", 263061440), ("VmallocUsed", 120000),
        ("CmaTotal", 196608), ("CmaFree", 12000),
    ]
    return "".join(f"{(name + ':'):<16}{value:>8} kB\n" for name, value in rows)


def render_cpuinfo(profile: Profile) -> str:
    """arm64 /proc/cpuinfo: one block per core with its MIDR part number."""
    blocks = []
    for cpu, cluster in profile.cores():
        blocks.append(
            f"processor\t: {cpu}\nBogoMIPS\t: {profile.bogomips:.2f}\nFeatures\t: {_CPU_FEATURES}\n"
            f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n"
            f"CPU part\t: {cluster.part}\nCPU revision\t: 0\n"
        )
    return "\n".join(blocks) + "\n"


def temporary_root(prefix: str = "slmdeploy-phone-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
