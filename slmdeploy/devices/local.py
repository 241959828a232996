"""``local``: this host as the device. The embedded default, no phone needed.

It goes through the same deployment path as a phone (a device work directory, a
content-addressed blob cache, the harness run as a subprocess in a fresh run directory),
so what works here works the same way over adb and ssh.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Sequence

from slmdeploy.devices.base import DeviceInfo, ProgressFn, ShellResult, quote_cmd
from slmdeploy.devices.lock import device_lock
from slmdeploy.errors import DeviceError
from slmdeploy.harness import telemetry

CHUNK = 1 << 22
DEFAULT_TIMEOUT = 300.0  # shell commands without an explicit timeout (as on the other transports)


def _copy(src: Path, dst: Path, progress: ProgressFn | None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(CHUNK):
            fout.write(block)
            if progress:
                progress(len(block))


class LocalDevice:
    transport = "local"

    def __init__(self, root: str | Path | None = None) -> None:
        default = Path(os.environ.get("SLMDEPLOY_CACHE") or Path.home() / ".cache" / "slmdeploy") / "local-device"
        self.root = (Path(root) if root else default).absolute()  # cleaning refuses a relative workdir
        self.root.mkdir(parents=True, exist_ok=True)
        self.spec = "local"
        self.workdir = str(self.root)

    def shell(self, cmd: str | Sequence[str], timeout: float | None = None) -> ShellResult:
        line = quote_cmd(cmd)
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        # Its own session: on timeout the whole group goes, not only /bin/sh (a grandchild
        # would otherwise keep running and hold the output pipes open).
        proc = subprocess.Popen(["/bin/sh", "-c", line], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.root, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException as exc:
            _kill_group(proc)
            if isinstance(exc, subprocess.TimeoutExpired):
                raise DeviceError(f"command timed out after {timeout:.0f} s on local (it was killed): {line[:200]}") from None
            raise
        return ShellResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def push(self, local: Path, remote: str, progress: ProgressFn | None = None) -> None:
        _copy(Path(local), Path(remote), progress)

    def pull(self, remote: str, local: Path, progress: ProgressFn | None = None) -> None:
        if not Path(remote).is_file():
            raise DeviceError(f"local: {remote} does not exist")
        _copy(Path(remote), Path(local), progress)

    def info(self) -> DeviceInfo:
        uname = platform.uname()
        meminfo = Path("/proc/meminfo").read_text().split("\n") if Path("/proc/meminfo").exists() else []
        ram = next((int(l.split()[1]) for l in meminfo if l.startswith("MemTotal:")), None)
        max_khz = []
        for cpu in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*"), key=lambda p: int(p.name[3:])):
            freq = cpu / "cpufreq/cpuinfo_max_freq"
            if freq.exists():
                max_khz.append(int(freq.read_text()))
        temps = telemetry.thermal_zones()
        free = shutil.disk_usage(self.root).free // 1024
        return DeviceInfo(
            spec=self.spec,
            transport=self.transport,
            serial=socket.gethostname(),
            model=_cpu_model(),
            manufacturer=None,
            soc=_cpu_model(),
            abi=uname.machine,
            exec_abi=uname.machine,
            os=uname.system,
            os_version=uname.release,
            cpu_cores=os.cpu_count(),
            cpu_max_khz=max_khz,
            ram_kib=ram,
            free_storage_kib=free,
            thermal_max_c=max(temps.values()) / 1000 if temps else None,
            extra={"python": platform.python_version()},
        )

    def lock(self):
        return device_lock(self.spec)

    def close(self) -> None:
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's whole session (its pid is the group id), then reap /bin/sh."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.kill()
    proc.communicate()  # the group is gone, so the pipes reach EOF


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None
