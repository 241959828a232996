"""What `slmdeploy devices` shows, read from the emulated phones' getprop/proc/sys and from a board."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmdeploy.cli.main import cli
from slmdeploy.devices import open_device
from slmdeploy.devices.android import read_telemetry
from slmdeploy.devices.discovery import adb_serials, describe_all
from slmdeploy.devices.emulator import EmulatedPhone, host_abi, load_profile


@pytest.mark.parametrize("profile_name", ["pixel8", "galaxy-s24"])
@pytest.mark.parametrize("transport", ["adb", "adb-direct"])
def test_phone_facts_match_the_profile(profile_name, transport, adb_server, tmp_path):
    profile = load_profile(profile_name)
    with EmulatedPhone(profile, root=tmp_path / "phone") as phone:
        serial = phone.serial
        adb_server.connect(serial)
        dev = open_device(f"{transport}:{serial}")
        info = dev.info()
        dev.close()
        adb_server.disconnect(serial)
    props = profile.props
    assert info.spec == f"{transport}:{serial}" and info.transport == transport
    assert info.model == props["ro.product.model"]
    assert info.manufacturer == props["ro.product.manufacturer"]
    assert info.soc == props["ro.soc.model"]
    assert info.abi == props["ro.product.cpu.abi"] == "arm64-v8a"
    assert info.exec_abi == host_abi()  # the emulated phone runs this host's binaries
    assert info.os == "Android" and info.os_version == props["ro.build.version.release"]
    assert info.emulated is True
    assert info.cpu_cores == profile.cpu_count
    assert info.cpu_max_khz == [c.max_khz for c in profile.clusters for _ in range(c.count)]
    assert info.ram_kib == profile.mem_total_kb
    assert info.free_storage_kib and info.free_storage_kib > 0
    assert info.battery_pct == profile.battery.capacity
    assert info.battery_temp_c is not None and 10 < info.battery_temp_c < 60
    assert set(info.extra["thermal_c"]) == {z.type for z in profile.thermal_zones}
    assert info.thermal_max_c == max(info.extra["thermal_c"].values())
    assert info.thermal_status == "none"
    assert info.extra["serialno"] == props["ro.serialno"]


def test_telemetry_over_the_shell_is_the_phone_sysfs(phone):
    dev = open_device(f"adb:{phone.serial}")
    sample = read_telemetry(dev)
    assert set(sample["thermal_mc"]) == {z.type for z in phone.profile.thermal_zones}
    assert {f"cpu{n}" for n in range(phone.profile.cpu_count)} <= set(sample["cpu_khz"])
    assert sample["battery"]["level_pct"] == phone.profile.battery.capacity
    assert set(sample["battery"]) == {"level_pct", "temp_dc", "current_ua", "voltage_uv"}


def test_throttled_phone_reports_it(adb_server, tmp_path):
    """Android's own thermal status (dumpsys thermalservice) first; capped cpufreq where a device has no dumpsys."""
    profile = load_profile("pixel8").with_thermal(trip_c=40.0, heat_c_per_cpu_s=5.0, cooling_tau_s=600.0)
    with EmulatedPhone(profile, root=tmp_path / "phone") as phone:
        dev = open_device(f"adb-direct:{phone.serial}")
        cool = dev.info()
        phone.thermal.step(10.0, 8.0)  # ten seconds of eight busy cores: far past the trip point
        info = dev.info()
        phone.sandbox.path("system/bin/dumpsys").unlink()  # a device without dumpsys
        fallback = dev.info()
    assert cool.thermal_status == "none" and cool.extra["thermal_status_source"] == "thermalservice"
    assert info.thermal_status == "moderate" and info.extra["thermal_status_source"] == "thermalservice"
    assert fallback.thermal_status == "throttled" and fallback.extra["thermal_status_source"] == "cpufreq"
    assert info.thermal_max_c > 40


def test_board_facts_over_ssh(lab, tmp_path):
    dev = lab.open("ssh", workdir=tmp_path / "wd")
    info = dev.info()
    dev.close()
    assert info.transport == "ssh" and info.os and info.os_version == os.uname().release
    assert info.abi == os.uname().machine
    assert info.cpu_cores == len(list(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")))
    meminfo = Path("/proc/meminfo").read_text().split()
    assert info.ram_kib == int(meminfo[meminfo.index("MemTotal:") + 1])
    assert info.free_storage_kib > 0 and info.battery_pct is None and info.emulated is False
    assert (tmp_path / "wd").is_dir()  # the work directory is made on first contact


def test_discovery_lists_adb_server_devices(phone, monkeypatch):
    assert phone.serial in adb_serials()
    infos = describe_all([])
    assert infos[0].transport == "local"
    assert any(i.spec == f"adb:{phone.serial}" and i.model == "Pixel 8" for i in infos)
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", "1")  # nothing listens there: no server is started
    assert adb_serials() == []


def test_devices_cli_json_and_unreachable_device(phone):
    result = CliRunner().invoke(cli, ["devices", "--json", "-d", f"adb:{phone.serial}", "-d", "adb-direct:127.0.0.1:1"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0]["model"] == "Pixel 8" and rows[0]["soc"] == "Tensor G3" and rows[0]["emulated"]
    assert rows[0]["cpu_max_khz"][-1] == 2910000 and rows[0]["battery_pct"] == phone.profile.battery.capacity
    assert rows[1]["spec"] == "adb-direct:127.0.0.1:1" and "cannot connect" in rows[1]["extra"]["error"]
    table = CliRunner().invoke(cli, ["devices", "-d", f"adb:{phone.serial}"])
    assert table.exit_code == 0 and "Pixel 8" in table.output and "Tensor G3" in table.output


def test_phone_without_sensors_has_no_thermal_values(tmp_path):
    bare = replace(load_profile("pixel8"), thermal_zones=(), battery=None)
    with EmulatedPhone(bare, root=tmp_path / "phone") as phone:
        info = open_device(f"adb-direct:{phone.serial}").info()
    assert info.thermal_max_c is None and info.battery_pct is None and info.battery_temp_c is None
    assert info.model == "Pixel 8"
