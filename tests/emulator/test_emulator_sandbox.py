"""The phone's environment: profiles, isolation modes, and a clean host."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from slmdeploy.devices.emulator import EmulatedPhone, available_profiles, load_profile
from slmdeploy.devices.emulator.auth import encode_public_key
from slmdeploy.devices.emulator.namespace import namespaces_supported


def test_shipped_profiles():
    assert {"pixel8", "galaxy-s24"} <= set(available_profiles())
    s24 = load_profile("galaxy-s24")
    assert s24.props["ro.soc.model"] == "SM8650"
    assert [(c.core, c.count, c.max_khz) for c in s24.clusters] == [
        ("Cortex-A520", 2, 2208000), ("Cortex-A720", 3, 3096000), ("Cortex-A720", 2, 2900000),
        ("Cortex-X4", 1, 3393600)]
    assert s24.ram_bytes == 8 * 1024**3 and load_profile("pixel8").cpu_count == 9


def test_namespace_isolation_is_used_and_host_stays_clean(phone_factory):
    assert namespaces_supported()  # root with unshare: the preferred mode is available here and in CI
    before = sorted(os.listdir("/"))
    phone = phone_factory("galaxy-s24")
    assert phone.isolation == "namespace"
    probe = Path(f"/usr/slmdeploy-ro-probe-{os.getpid()}")
    try:
        result = phone.run("ls -d /data/local/tmp /sdcard /system/bin/getprop; getprop ro.product.model; "
                           f"cat /sys/devices/system/cpu/cpu7/cpufreq/cpuinfo_max_freq; echo x > {probe}")
        assert not probe.exists()  # the host's own directories cannot be written from the phone
    finally:
        probe.unlink(missing_ok=True)
    assert result.stdout.split() == ["/data/local/tmp", "/sdcard", "/system/bin/getprop", "SM-S921U", "3393600"]
    assert "Read-only file system" in result.stderr
    assert sorted(os.listdir("/")) == before  # no /data, /sdcard or /system appeared on the host


def test_profile_without_sensors(phone_factory):
    bare = replace(load_profile("pixel8"), thermal_zones=(), battery=None)
    phone = phone_factory(bare)
    assert phone.isolation == "namespace"
    result = phone.run("ls -A /sys/class/thermal; ls -A /sys/class/power_supply")
    assert (result.returncode, result.stdout) == (0, "")  # the classes exist, with no sensors


def test_rewrite_fallback(phone_factory, adb_server, tmp_path):
    phone = phone_factory(isolation="rewrite")
    assert phone.isolation == "rewrite"
    adb_server.connect(phone.serial)
    try:
        def shell(cmd: str) -> str:
            return adb_server.adb("-s", phone.serial, "shell", cmd).stdout

        assert shell("head -1 /proc/meminfo").split() == ["MemTotal:", "7612236", "kB"]
        assert shell("getprop ro.product.model") == "Pixel 8\n"
        assert shell("cat /sys/devices/system/cpu/online") == "0-8\n"
        (tmp_path / "f").write_text("pushed\n")
        adb_server.adb("-s", phone.serial, "push", str(tmp_path / "f"), "/data/local/tmp/f", check=True)
        assert shell("cat /data/local/tmp/f") == "pushed\n"
        assert (phone.root / "data/local/tmp/f").read_text() == "pushed\n"
        refused = adb_server.adb("-s", phone.serial, "push", str(tmp_path / "f"), "/etc/f")
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    finally:
        adb_server.disconnect(phone.serial)


def test_data_and_keys_survive_a_restart_with_the_same_root(tmp_path):
    key = encode_public_key(rsa.generate_private_key(65537, 2048).public_key(), "t@host")
    with EmulatedPhone("pixel8", root=tmp_path / "p") as phone:
        assert phone.run("echo kept > /data/local/tmp/k").returncode == 0
        phone.keys.add(key)
    with EmulatedPhone("pixel8", root=tmp_path / "p") as phone:
        assert phone.run("cat /data/local/tmp/k").stdout == "kept\n"
        assert phone.keys.keys == [key]
