"""A slower phone: every command the phone runs shares a fraction of one host core.

A real phone runs a benchmark on its own CPU; the emulated phone runs it on this host's.
With ``cpu_share`` (e.g. 0.1 = a tenth of one core) the phone's commands are placed in a
cgroup with a CPU bandwidth limit, so a harness takes as long as on a phone that much
slower while the host stays free: many such phones behave like a shelf of real ones
(device time dominates, the host only drives them), which is what studies across many
devices are measured with (benchmarks/study_scaling.py).

cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``), whichever has the cpu controller;
creating the group needs root (or a delegated cgroup), as on our test machines.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

PERIOD_US = 100_000


def _cpu_hierarchy() -> tuple[str, Path] | None:
    """("v2" | "v1", mount point) of a cgroup hierarchy that has the cpu controller."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) < 4:
            continue
        mount, fstype, options = Path(fields[1]), fields[2], fields[3].split(",")
        if fstype == "cgroup2":
            try:
                if "cpu" in (mount / "cgroup.controllers").read_text().split():
                    return "v2", mount
            except OSError:
                continue
        if fstype == "cgroup" and "cpu" in options:
            return "v1", mount
    return None


class CpuShare:
    """One cgroup per phone; ``wrap(argv)`` makes a command join it before it runs."""

    def __init__(self, name: str, share: float) -> None:
        if not 0 < share <= 64:
            raise ValueError(f"cpu_share must be in (0, 64] host cores, got {share}")
        found = _cpu_hierarchy()
        if found is None:
            raise OSError("cpu_share needs a cgroup hierarchy with the cpu controller (/proc/mounts lists none)")
        self.version, mount = found
        self.path = mount / f"slmdeploy-{name}-{os.getpid()}"
        quota = max(int(share * PERIOD_US), 1000)
        try:
            self.path.mkdir(exist_ok=True)
            if self.version == "v2":
                (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as err:
            raise OSError(f"cpu_share: cannot set up the cgroup {self.path} ({err.strerror}); it needs root") from None
        self.share = share

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run by a shell that first moves itself into the phone's cgroup (children inherit it)."""
        procs = shlex.quote(str(self.path / "cgroup.procs"))
        return ["/bin/sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *argv]

    def remove(self) -> None:
        """Delete the cgroup (after the phone's processes are gone; a busy group is left for the kernel)."""
        try:
            for pid in (self.path / "cgroup.procs").read_text().split():
                (self.path.parent / "cgroup.procs").write_text(pid)
            self.path.rmdir()
        except OSError:
            pass
