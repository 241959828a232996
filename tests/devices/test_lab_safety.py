"""One run per device, stray harnesses killed (and only those), cooldown before a run."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from slmdeploy.devices.clean import kill_strays
from slmdeploy.devices import open_device
from slmdeploy.devices.cooldown import wait_until_cool
from slmdeploy.devices.emulator import EmulatedPhone, load_profile
from slmdeploy.devices.lock import device_lock
from slmdeploy.devices.spec import identity
from slmdeploy.errors import DeviceError

HOLDER = """
import sys, time
from slmdeploy.devices.lock import device_lock
with device_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(spec: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, spec], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _assert_busy(held: str, wanted: str) -> None:
    """While another process holds ``held``, locking ``wanted`` fails naming that process."""
    holder = _holder(held)
    try:
        with pytest.raises(DeviceError, match=f"busy: pid {holder.pid}"):
            with device_lock(wanted, timeout=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_a_second_process_waits_for_the_device_lock():
    _assert_busy("adb:lock-test-serial", "adb:lock-test-serial")


def test_a_killed_holder_releases_the_lock():
    spec = "ssh:someone@board-lock-test"
    holder = _holder(spec)
    holder.send_signal(signal.SIGKILL)  # a crashed run: no cleanup code runs
    holder.wait()
    with device_lock(spec, timeout=5):
        pass


def test_other_devices_are_not_blocked():
    holder = _holder("adb:one-phone")
    try:
        with device_lock("adb:another-phone", timeout=0.5):
            pass
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("held, wanted", [
    ("adb:127.0.0.1:5555", "adb-direct:127.0.0.1:5555"),  # one phone, through the server or directly
    ("adb-direct:PHONE.lan:5555", "adb:phone.lan:5555"),
    ("ssh:pi@board-lock-id", "ssh:pi@board-lock-id:22"),  # the default port written out
    ("ssh:pi@[::1]", "ssh:pi@[::1]:22"),
])
def test_two_specs_of_one_device_contend_for_one_lock(held, wanted):
    _assert_busy(held, wanted)


@pytest.mark.parametrize("one, other", [
    ("adb:127.0.0.1:5555", "adb:127.0.0.1:5556"),
    ("ssh:pi@board", "ssh:pi@board:2222"),
    ("ssh:pi@board", "ssh:root@board"),
])
def test_different_devices_have_different_identities(one, other):
    assert identity(one) != identity(other)


def _start_fake_harness(dev, run_id: str, argv_mark: str) -> str:
    """A long-running process started the way bench starts a harness; returns its pid."""
    run = f"{dev.workdir}/runs/{run_id}"
    harness = f"echo $$ > harness.pid; exec {shlex.quote(sys.executable)} -c 'import time; time.sleep(120)' {argv_mark}"
    line = (f"mkdir -p {shlex.quote(run)} && cd {shlex.quote(run)} && rm -f harness.pid && "
            f"{{ sh -c {shlex.quote(harness)} </dev/null >/dev/null 2>&1 & }} && "
            "while [ ! -s harness.pid ]; do sleep 0.05; done; cat harness.pid")
    return dev.shell(line).stdout.strip()


def _alive(pid: str) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.mark.parametrize("transport", ["adb", "adb-direct"])
def test_stray_harnesses_are_killed_but_reused_pids_are_not(transport, phone):
    dev = open_device(f"{transport}:{phone.serial}")
    stray = _start_fake_harness(dev, "20990101-stray-run", "--run-id=20990101-stray-run")
    innocent = _start_fake_harness(dev, "20990101-old-run", "--run-id=some-other-process")
    assert _alive(stray) and _alive(innocent)
    assert kill_strays(dev) == 1  # bench records this count (run.json strays_killed)
    deadline = time.monotonic() + 10
    while _alive(stray) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(stray)
    assert _alive(innocent)  # its pid file pointed at a process of another run id: left alone
    assert dev.shell(f"ls {dev.workdir}/runs/*/harness.pid 2>/dev/null").stdout == ""
    subprocess.run(["kill", "-9", innocent])
    dev.close()


@pytest.fixture
def hot_phone(adb_server, tmp_path):
    profile = load_profile("pixel8").with_thermal(cooling_tau_s=1.5, heat_c_per_cpu_s=2.0, trip_c=70.0)
    with EmulatedPhone(profile, root=tmp_path / "hot-phone", thermal_interval_s=0.05) as phone:
        yield phone


def test_cooldown_waits_until_the_phone_is_below_the_limit(hot_phone):
    dev = open_device(f"adb-direct:{hot_phone.serial}")
    hot_phone.thermal.step(5.0, 8.0)  # five seconds of eight busy cores
    start = hot_phone.thermal.temperature_c
    assert start > 50
    seen: list[float] = []
    result = wait_until_cool(dev, 40.0, timeout=60, poll=0.1, on_wait=seen.append)
    assert result["reached"] is True and result["start_c"] >= 40.0 > result["end_c"]
    assert seen and seen[0] >= 40.0 and result["waited_s"] > 0
    assert hot_phone.thermal.temperature_c < 40.0
    dev.close()


def test_cooldown_gives_up_after_its_timeout(hot_phone):
    dev = open_device(f"adb-direct:{hot_phone.serial}")
    with pytest.raises(DeviceError, match="still at .* after 0 s of cooldown"):
        wait_until_cool(dev, 10.0, timeout=0.3, poll=0.1)  # ambient is 30 °C: never below 10
    dev.close()


def test_cooldown_skips_devices_without_sensors(tmp_path):
    bare = replace(load_profile("pixel8"), thermal_zones=(), battery=None)
    with EmulatedPhone(bare, root=tmp_path / "phone") as phone:
        dev = open_device(f"adb-direct:{phone.serial}")
        assert wait_until_cool(dev, 40.0, timeout=1)["reached"] is None
        dev.close()
