"""The real adb client (from the adbutils wheel) against the emulated phone."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from slmdeploy.devices.emulator import EmulatedPhone, host_abi
from slmdeploy.devices.emulator.testing import AdbServer


def shell(server: AdbServer, phone: EmulatedPhone, command: str, **kwargs):
    return server.adb("-s", phone.serial, "shell", command, **kwargs)


def test_connect_lists_device_with_profile_identity(connected_phone, adb_server):
    listing = adb_server.adb("devices", "-l").stdout
    line = next(l for l in listing.splitlines() if l.startswith(connected_phone.serial))
    assert line.split()[1] == "device"
    assert "product:shiba" in line and "model:Pixel_8" in line and "device:shiba" in line


def test_shell_exit_code_and_separate_stderr(connected_phone, adb_server):
    assert shell(adb_server, connected_phone, "exit 3").returncode == 3
    result = shell(adb_server, connected_phone, "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")


def test_shell_v1_merges_stderr_and_loses_exit_code(connected_phone, adb_server):
    result = adb_server.adb("-s", connected_phone.serial, "shell", "-x", "echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (0, "err\n", "")


def test_exec_out_is_raw(connected_phone, adb_server):
    result = adb_server.adb("-s", connected_phone.serial, "exec-out", "head -c 3000000 /dev/zero", text=False)
    assert result.returncode == 0 and result.stdout == bytes(3_000_000)


def test_getprop(connected_phone, adb_server):
    assert shell(adb_server, connected_phone, "getprop ro.product.model").stdout == "Pixel 8\n"
    assert shell(adb_server, connected_phone, "getprop ro.nonexistent fallback").stdout == "fallback\n"
    everything = shell(adb_server, connected_phone, "getprop").stdout
    assert "[ro.product.cpu.abi]: [arm64-v8a]\n" in everything
    assert "[ro.soc.model]: [Tensor G3]\n" in everything
    assert f"[ro.slmdeploy.exec_abi]: [{host_abi()}]\n" in everything
    assert "[ro.slmdeploy.emulated]: [1]\n" in everything


def test_proc_and_sys_come_from_the_profile(connected_phone, adb_server):
    meminfo = shell(adb_server, connected_phone, "cat /proc/meminfo").stdout
    assert meminfo.splitlines()[0].split() == ["MemTotal:", "7612236", "kB"]
    cpuinfo = shell(adb_server, connected_phone, "grep -c ^processor /proc/cpuinfo").stdout
    assert cpuinfo.strip() == "9"
    out = shell(adb_server, connected_phone,
                "cat /sys/devices/system/cpu/possible /sys/devices/system/cpu/cpu8/cpufreq/cpuinfo_max_freq "
                "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq /sys/class/thermal/thermal_zone0/type "
                "/sys/class/power_supply/battery/capacity").stdout.split()
    assert out == ["0-8", "2910000", "1704000", "BIG", "87"]


def test_shell_cwd_env_and_device_layout(connected_phone, adb_server):
    out = shell(adb_server, connected_phone, "pwd; echo $TMPDIR; test -d /data/local/tmp && echo ok").stdout
    assert out.split() == ["/", "/data/local/tmp", "ok"]


def test_push_pull_round_trip(connected_phone, adb_server, tmp_path):
    payload = os.urandom(6 * 1024 * 1024 + 123)
    src, back = tmp_path / "model.bin", tmp_path / "back.bin"
    src.write_bytes(payload)
    push = adb_server.adb("-s", connected_phone.serial, "push", str(src), "/data/local/tmp/")
    assert push.returncode == 0, push.stderr
    assert connected_phone.device_path("/data/local/tmp/model.bin").read_bytes() == payload
    assert (connected_phone.root / "data/local/tmp/model.bin").stat().st_size == len(payload)  # the sandbox
    digest = shell(adb_server, connected_phone, "sha256sum /data/local/tmp/model.bin").stdout.split()[0]
    assert digest == hashlib.sha256(payload).hexdigest()
    pull = adb_server.adb("-s", connected_phone.serial, "pull", "/data/local/tmp/model.bin", str(back))
    assert pull.returncode == 0, pull.stderr
    assert back.read_bytes() == payload


def test_push_creates_parent_directories_and_sets_mode(connected_phone, adb_server, tmp_path):
    src = tmp_path / "run.sh"
    src.write_text("#!/bin/sh\necho harness ran\n")
    src.chmod(0o755)
    push = adb_server.adb("-s", connected_phone.serial, "push", str(src), "/data/local/tmp/a/b/run.sh")
    assert push.returncode == 0, push.stderr
    assert shell(adb_server, connected_phone, "/data/local/tmp/a/b/run.sh").stdout == "harness ran\n"


def test_host_built_binary_runs_from_data_local_tmp(connected_phone, adb_server):
    """The emulated phone executes what was built for this host (ro.slmdeploy.exec_abi)."""
    echo = shutil.which("echo")
    assert echo is not None
    push = adb_server.adb("-s", connected_phone.serial, "push", echo, "/data/local/tmp/harness")
    assert push.returncode == 0, push.stderr
    result = shell(adb_server, connected_phone, "cd /data/local/tmp && ./harness --tokens 16")
    assert (result.returncode, result.stdout) == (0, "--tokens 16\n")


def test_large_push_pull(connected_phone, adb_server, tmp_path):
    payload = os.urandom(256 * 1024 * 1024)
    src, back = tmp_path / "big.pte", tmp_path / "back.pte"
    src.write_bytes(payload)
    adb_server.adb("-s", connected_phone.serial, "push", str(src), "/data/local/tmp/big.pte", check=True)
    adb_server.adb("-s", connected_phone.serial, "pull", "/data/local/tmp/big.pte", str(back), check=True)
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(payload).digest()


def test_push_pull_directory_with_symlink(connected_phone, adb_server, tmp_path):
    tree = tmp_path / "bundle"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib" / "libmodel.so").write_bytes(os.urandom(70_000))
    (tree / "config.json").write_text("{}")
    (tree / "current").symlink_to("config.json")
    for _ in range(2):  # the second push replaces files and leaves the identical link alone
        push = adb_server.adb("-s", connected_phone.serial, "push", str(tree), "/data/local/tmp/")
        assert push.returncode == 0, push.stderr
    assert shell(adb_server, connected_phone, "readlink /data/local/tmp/bundle/current").stdout == "config.json\n"
    back = tmp_path / "back"
    pull = adb_server.adb("-s", connected_phone.serial, "pull", "/data/local/tmp/bundle", str(back))
    assert pull.returncode == 0, pull.stderr
    assert (back / "lib" / "libmodel.so").read_bytes() == (tree / "lib" / "libmodel.so").read_bytes()
    assert (back / "config.json").read_text() == "{}"


def test_ls_shows_pushed_file(connected_phone, adb_server, tmp_path):
    (tmp_path / "weights.pte").write_bytes(b"x" * 1000)
    adb_server.adb("-s", connected_phone.serial, "push", str(tmp_path / "weights.pte"), "/data/local/tmp/", check=True)
    assert "weights.pte" in shell(adb_server, connected_phone, "ls /data/local/tmp").stdout.split()
    sync_ls = adb_server.adb("-s", connected_phone.serial, "ls", "/data/local/tmp").stdout
    assert any(line.endswith(" weights.pte") and "000003e8" in line for line in sync_ls.splitlines())


def test_pull_missing_file_fails(connected_phone, adb_server, tmp_path):
    result = adb_server.adb("-s", connected_phone.serial, "pull", "/data/local/tmp/nope", str(tmp_path / "x"))
    assert result.returncode != 0
    assert "No such file or directory" in result.stderr


def test_push_outside_writable_areas_is_refused(connected_phone, adb_server, tmp_path):
    (tmp_path / "f").write_bytes(b"1")
    result = adb_server.adb("-s", connected_phone.serial, "push", str(tmp_path / "f"), "/system/f")
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr


def test_stdin_is_forwarded(connected_phone, adb_server):
    data = "line\n" * 200_000
    result = shell(adb_server, connected_phone, "wc -c", input=data)
    assert result.stdout.strip() == str(len(data))
    assert shell(adb_server, connected_phone, "cat", input="hello\n").stdout == "hello\n"


def test_closing_the_client_kills_the_command(connected_phone, adb_server):
    client = adb_server.popen("-s", connected_phone.serial, "shell", "sleep 60")
    deadline = time.monotonic() + 10
    while not connected_phone.processes.pids():
        assert time.monotonic() < deadline, "command never started"
        time.sleep(0.05)
    client.kill()
    client.wait()
    while connected_phone.processes.pids():
        assert time.monotonic() < deadline, "command survived its stream"
        time.sleep(0.05)


def test_concurrent_streams(connected_phone, adb_server):
    results: dict[int, str] = {}

    def run(i: int) -> None:
        results[i] = shell(adb_server, connected_phone, f"sleep 0.5; echo {i}").stdout

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - start < 3.5  # 8 x 0.5 s would be 4 s serially
    assert results == {i: f"{i}\n" for i in range(8)}


def test_tmp_is_the_hosts_and_read_only(connected_phone, adb_server):
    host_file = Path("/tmp") / f"slmdeploy-visible-{os.getpid()}"
    host_file.write_text("from the host\n")
    try:  # host binaries under /tmp (a venv, a CI checkout) must run on the phone
        assert shell(adb_server, connected_phone, f"cat {host_file}").stdout == "from the host\n"
        write = shell(adb_server, connected_phone, f"echo x > {host_file}.phone")
        assert write.returncode != 0 and not Path(f"{host_file}.phone").exists()
    finally:
        host_file.unlink()
