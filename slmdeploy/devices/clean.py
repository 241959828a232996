"""What slmdeploy leaves on a device, and removing it.

A run leaves its harness (killed here if an interrupted run left it running), the
content-addressed blob cache (``<workdir>/blobs``: artifacts and harness binaries), the
device side of each run directory (``<workdir>/runs``, already pulled back) and library
links (``<workdir>/lib``). A lost link or a timeout can also leave scratch files outside the
work directory: adb-direct's stderr files in ``/data/local/tmp`` and the ssh transport's
pid files in ``/tmp``; those whose command is gone are removed here.
"""

from __future__ import annotations

import shlex
from typing import Any

from slmdeploy.devices.adb_common import stale_scratch_cleanup
from slmdeploy.devices.base import Device
from slmdeploy.devices.lock import device_lock
from slmdeploy.devices.ssh import stale_pidfile_cleanup
from slmdeploy.errors import DeviceError, SlmdeployError

CACHED = ("blobs", "runs", "lib")  # under the workdir; all of it is recreated by the next bench
KILLED = "slmdeploy-killed"  # the kill script's line per harness it killed


def _kill_script(pid_files: str) -> str:
    """Kill the harness of each ``<run dir>/harness.pid`` that ``pid_files`` (a shell word) expands to.

    A pid file can outlive its process and the pid be reused by an unrelated one, so a pid is
    killed only while its command line still carries the run's id (``--run-id``, the run
    directory's name); then the script waits (up to 2 s) until it is gone, so what is pulled
    next is the harness's last word. Each kill prints a ``KILLED`` line (``kill_strays`` counts them).
    """
    return (
        f"for p in {pid_files}; do [ -f \"$p\" ] || continue; pid=$(cat \"$p\"); d=\"${{p%/harness.pid}}\"; "
        f"case \"$pid\" in ''|*[!0-9]*) ;; *) if grep -qF -e \"${{d##*/}}\" /proc/$pid/cmdline 2>/dev/null; "
        f"then kill -9 \"$pid\" 2>/dev/null; echo \"{KILLED} $pid\"; i=0; while [ $i -lt 20 ] && grep -qF -e \"${{d##*/}}\" "
        f"/proc/$pid/cmdline 2>/dev/null; do sleep 0.1; i=$((i+1)); done; fi;; esac; rm -f \"$p\"; done"
    )


def kill_strays(device: Device) -> int:
    """Harnesses left running by an earlier, interrupted run on this device, and stale scratch files.

    Returns how many harnesses were killed: bench records it (run.json ``strays_killed``), since a
    run that started while another harness ran shared the device (``analysis.validity``).
    """
    runs = shlex.quote(f"{device.workdir}/runs")
    result = device.shell(f"{_kill_script(runs + '/*/harness.pid')}; {stale_scratch_cleanup()}; "
                          f"{stale_pidfile_cleanup()}", timeout=30)
    return sum(1 for line in (result.stdout or "").splitlines() if line.startswith(KILLED + " "))


def kill_run(device: Device, remote_run: str) -> None:
    """The harness of one run (its device run directory ``remote_run``), if it still runs."""
    device.shell(_kill_script(shlex.quote(f"{remote_run}/harness.pid")), timeout=30)


def kill_strays_quietly(device: Device) -> None:
    """``kill_strays`` where the link may be gone (after a failure): a second error would hide the first."""
    try:
        kill_strays(device)
    except SlmdeployError:
        pass


def _check_workdir(device: Device) -> str:
    workdir = device.workdir.rstrip("/")
    if not workdir.startswith("/") or workdir.count("/") < 2:
        raise DeviceError(f"{device.spec}: refusing to clean the work directory {device.workdir!r}: "
                          "it must be an absolute path below the top level; pass another workdir.")
    return workdir


def parse_du(stdout: str) -> dict[str, int]:
    """{name: KiB} from ``du -sk NAME`` lines."""
    sizes = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            sizes[parts[1]] = int(parts[0])
    return sizes


def clean_device(device: Device, lock_timeout: float = 5.0) -> dict[str, Any]:
    """Kill stray harnesses, remove the blob cache, device run dirs, lib links and stale scratch files.

    Holds the device lock (a run in progress is never cleaned away under it). Returns what
    was removed: ``{"device", "workdir", "removed": {name: KiB}, "freed_kib"}``.
    """
    workdir = _check_workdir(device)
    with device_lock(device.spec, timeout=lock_timeout):
        kill_strays(device)
        names = " ".join(CACHED)
        script = (f"cd {shlex.quote(workdir)} 2>/dev/null || exit 0; "
                  f"for d in {names}; do [ -e \"$d\" ] || continue; du -sk \"$d\"; rm -rf \"$d\" || exit 1; done")
        result = device.shell(script, timeout=300)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DeviceError(f"{device.spec}: cleaning {workdir} failed (exit {result.exit_code}): "
                          f"{detail[-1] if detail else 'no message'}; check the directory's permissions on the device.")
    removed = parse_du(result.stdout)
    return {"device": device.spec, "workdir": workdir, "removed": removed, "freed_kib": sum(removed.values())}
