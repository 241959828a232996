"""Injected faults: dropped links, full storage, slow links, reboots, heat."""

from __future__ import annotations

import os
import socket
import time

from slmdeploy.devices.emulator import load_profile


def test_drop_mid_push(connected_phone, adb_server, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(4 * 1024 * 1024))
    connected_phone.drop_next_push_after(1024 * 1024)
    result = adb_server.adb("-s", connected_phone.serial, "push", str(src), "/data/local/tmp/big.bin")
    assert result.returncode != 0
    assert "adb: error" in result.stderr
    # adbd removes a file whose transfer failed; it never stays under the final name half written
    assert not connected_phone.device_path("/data/local/tmp/big.bin").exists()
    adb_server.wait_for_state(connected_phone.serial, "device")  # the adb server reconnects by itself
    retry = adb_server.adb("-s", connected_phone.serial, "push", str(src), "/data/local/tmp/big.bin")
    assert retry.returncode == 0, retry.stderr  # one-shot fault
    assert connected_phone.device_path("/data/local/tmp/big.bin").read_bytes() == src.read_bytes()


def test_full_storage(connected_phone, adb_server, tmp_path):
    connected_phone.set_storage_quota(connected_phone.sandbox.data_usage() + 512 * 1024)
    big, small = tmp_path / "big.bin", tmp_path / "small.bin"
    big.write_bytes(b"\1" * (2 * 1024 * 1024))
    small.write_bytes(b"\2" * 1024)
    result = adb_server.adb("-s", connected_phone.serial, "push", str(big), "/data/local/tmp/")
    assert result.returncode != 0
    assert "remote write failed: No space left on device" in result.stderr
    assert not connected_phone.device_path("/data/local/tmp/big.bin").exists()
    ok = adb_server.adb("-s", connected_phone.serial, "push", str(small), "/data/local/tmp/")
    assert ok.returncode == 0, ok.stderr
    connected_phone.set_storage_quota(None)
    assert adb_server.adb("-s", connected_phone.serial, "push", str(big), "/data/local/tmp/").returncode == 0


def test_drop_mid_command(connected_phone, adb_server):
    connected_phone.drop_next_shell_after(0.5)
    start = time.monotonic()
    result = adb_server.adb("-s", connected_phone.serial, "shell", "sleep 20; echo finished", timeout=15)
    assert time.monotonic() - start < 10
    assert result.returncode != 0 and "finished" not in result.stdout
    deadline = time.monotonic() + 5
    while connected_phone.processes.pids():
        assert time.monotonic() < deadline, "command survived the dropped link"
        time.sleep(0.05)
    adb_server.wait_for_state(connected_phone.serial, "device")
    assert adb_server.adb("-s", connected_phone.serial, "shell", "echo back").stdout == "back\n"


def test_slow_link(connected_phone, adb_server, tmp_path):
    src = tmp_path / "blob"
    src.write_bytes(b"\3" * 300_000)
    connected_phone.set_link_speed(200_000)
    start = time.monotonic()
    result = adb_server.adb("-s", connected_phone.serial, "push", str(src), "/data/local/tmp/")
    slow = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert slow >= 1.3  # 300 kB at 200 kB/s
    connected_phone.set_link_speed(None)
    start = time.monotonic()
    adb_server.adb("-s", connected_phone.serial, "push", str(src), "/data/local/tmp/", check=True)
    assert time.monotonic() - start < slow / 2


def test_reboot_drops_everything_but_data(connected_phone, adb_server):
    serial = connected_phone.serial
    adb_server.adb("-s", serial, "shell", "echo kept > /data/local/tmp/kept", check=True)
    sleeper = adb_server.popen("-s", serial, "shell", "sleep 60")
    deadline = time.monotonic() + 10
    while not connected_phone.processes.pids():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert adb_server.adb("-s", serial, "reboot").returncode == 0
    assert sleeper.wait(timeout=10) != 0  # its transport went away under it
    assert connected_phone.reboots == 1
    while connected_phone.processes.pids():
        assert time.monotonic() < deadline, "a process survived the reboot"
        time.sleep(0.05)
    adb_server.wait_for_state(serial, "device", timeout=20)
    out = adb_server.adb("-s", serial, "shell", "cat /data/local/tmp/kept").stdout
    assert out.split() == ["kept"]


def test_connections_refused_while_rebooting(emulated_phone):
    emulated_phone.reboot(downtime_s=1.0)
    with socket.create_connection(("127.0.0.1", emulated_phone.port), timeout=2) as sock:
        assert sock.recv(1) == b""  # closed at once: adbd is not up yet
    time.sleep(1.1)
    with socket.create_connection(("127.0.0.1", emulated_phone.port), timeout=2) as sock:
        sock.settimeout(0.3)
        try:
            sock.recv(1)
            raise AssertionError("a booted phone waits for the host's CNXN")
        except TimeoutError:
            pass


def test_heating_and_throttling(phone_factory, adb_server):
    # fast heating so that even a CPU-starved burner (loaded CI box) crosses the trip point
    profile = load_profile("pixel8").with_thermal(heat_c_per_cpu_s=100.0, cooling_tau_s=1.0, trip_c=45.0,
                                                   hysteresis_c=5.0)
    phone = phone_factory(profile, thermal_interval_s=0.1)
    adb_server.connect(phone.serial)
    base = "/sys/devices/system/cpu/cpu8/cpufreq"
    probe = f"cat /sys/class/thermal/thermal_zone0/temp {base}/scaling_cur_freq {base}/scaling_max_freq"

    def sample() -> tuple[int, ...]:
        return tuple(int(v) for v in adb_server.adb("-s", phone.serial, "shell", probe).stdout.split())

    def idle_sample() -> tuple[int, ...]:
        """Read on the host: an adb probe's own few ms of CPU would count as load."""
        return tuple(int(phone.device_path(path).read_text()) for path in probe.split()[1:])

    try:
        temp, cur, cap = idle_sample()
        assert temp < 40_000 and cur == 500_000 and cap == 2_910_000  # idle and cool
        burner = adb_server.popen("-s", phone.serial, "shell", "while :; do :; done")
        readings = []
        deadline = time.monotonic() + 15
        while len([r for r in readings if r[2] < 2_910_000]) < 5:
            assert time.monotonic() < deadline, f"never throttled: {readings}"
            readings.append(sample())
        burner.kill()  # closing the stream kills the burner on the phone
        burner.wait()
        hot = [r for r in readings if r[2] < 2_910_000]
        assert {m for _t, _c, m in hot} == {1_746_000}  # the cap is 60 % of 2.91 GHz
        # three files read one after the other can straddle an update (as on a phone), so
        # ask for some reading that is hot, busy and capped rather than for all of them
        assert any(t >= 45_000 and c == m for t, c, m in hot)
        deadline = time.monotonic() + 15
        while (reading := idle_sample())[2] != 2_910_000:
            assert time.monotonic() < deadline, f"never cooled down: {reading}"
            time.sleep(0.1)
        assert reading[0] < 40_000 and not phone.thermal.throttled
        assert sample()[2] == 2_910_000  # the phone's own view agrees
    finally:
        adb_server.disconnect(phone.serial)
