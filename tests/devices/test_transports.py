"""The Device protocol over adb (server), adb-direct (adb-shell) and ssh (OpenSSH), for real."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time

import pytest

from slmdeploy.devices import Device, open_device
from slmdeploy.devices.adb_common import V1Command
from slmdeploy.errors import DeviceError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _host_pids(pattern: str) -> list[str]:
    """Every device under test runs on this host, so its processes are visible here."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return out.split()


def _wait_gone(pattern: str, limit: float = 15.0) -> list[str]:
    deadline = time.monotonic() + limit
    while (pids := _host_pids(pattern)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def test_every_transport_is_a_device(device):
    assert isinstance(device, Device)
    assert device.workdir.startswith("/")
    assert device.spec.startswith(device.transport + ":")


def test_exit_code_and_stderr_come_back_separately(device):
    result = device.shell("echo out; echo err >&2; printf tail; exit 7")
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\ntail", "err\n")
    assert device.shell("true").ok and device.shell(["false"]).exit_code == 1
    assert device.shell("kill -9 $$").exit_code == 137  # killed by a signal: 128 + 9


def test_every_argument_is_quoted(device):
    nasty = ["a b", "it's", "$HOME", "`id`", "semi;colon && echo pwned", "new\nline", "*", "", "-n"]
    result = device.shell(["printf", "%s|", *nasty])
    assert result.ok, result.stderr
    assert result.stdout == "|".join(nasty) + "|"


def test_large_output_and_stdin_is_closed(device):
    result = device.shell("head -c 300000 /dev/zero | tr '\\000' a; cat; echo done >&2", timeout=60)
    assert result.ok
    assert result.stdout == "a" * 300000  # `cat` got EOF at once instead of hanging on stdin
    assert result.stderr == "done\n"


def test_a_command_past_its_timeout_is_stopped(device):
    mark = f"slmdeploy-timeout-{secrets.token_hex(4)}"
    with pytest.raises(DeviceError, match="timed out"):
        device.shell(f"sleep 60; echo {mark}", timeout=1)
    assert _wait_gone(mark) == []
    assert device.shell("echo still here").stdout == "still here\n"


def test_push_and_pull_are_exact_with_progress(device, scratch, tmp_path):
    data = os.urandom(3 * (1 << 20) + 12345)
    local = tmp_path / "blob.bin"
    local.write_bytes(data)
    remote = f"{scratch}/made/on/demand/blob.bin"  # parent directories are created, as adb push does
    seen: list[int] = []
    device.push(local, remote, progress=seen.append)
    assert sum(seen) == len(data) and len(seen) > 1
    assert device.shell(["sha256sum", remote]).stdout.split()[0] == _sha(data)
    back = tmp_path / "back" / "blob.bin"
    pulled: list[int] = []
    device.pull(remote, back, progress=pulled.append)
    assert back.read_bytes() == data and sum(pulled) == len(data)
    assert not list(back.parent.glob("*.part"))


def test_empty_file_round_trip(device, scratch, tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    device.push(tmp_path / "empty", f"{scratch}/empty")
    device.pull(f"{scratch}/empty", tmp_path / "empty-back")
    assert (tmp_path / "empty-back").read_bytes() == b""


def test_failed_transfers_raise_and_leave_nothing(device, scratch, tmp_path):
    with pytest.raises(DeviceError):
        device.pull(f"{scratch}/no-such-file", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()
    (tmp_path / "x").write_bytes(b"x" * 100)
    assert device.shell(["touch", f"{scratch}/a-file"]).ok
    with pytest.raises(DeviceError):
        device.push(tmp_path / "x", f"{scratch}/a-file/under-a-file")
    assert device.shell("echo ok").stdout == "ok\n"  # the transport survived the failure


def test_a_dropped_link_is_reconnected_for_the_next_call(device, lab):
    assert device.shell("echo before").ok
    lab.cut(device)
    deadline = time.monotonic() + 30
    while True:  # the call that meets the dead link may fail; the one after reconnects
        try:
            result = device.shell("echo after", timeout=30)
            break
        except DeviceError:
            assert time.monotonic() < deadline
    assert result.stdout == "after\n"


def test_a_drop_during_a_command_is_an_error_not_a_result(device, lab):
    import threading

    mark = f"slmdeploy-drop-{secrets.token_hex(4)}"
    threading.Timer(1.0, lab.cut, args=(device,)).start()
    try:
        with pytest.raises(DeviceError, match="lost|closed|broke"):
            device.shell(f"sleep 20; echo {mark}", timeout=60)
    finally:  # adbd kills a command whose stream died; sshd leaves it running (bench kills strays)
        subprocess.run(["pkill", "-f", mark])


@pytest.mark.parametrize("transport", ["adb", "adb-direct"])
def test_a_rebooting_phone_is_waited_for(transport, phone, adb_server):
    dev = open_device(f"{transport}:{phone.serial}")
    try:
        assert dev.shell("echo up").ok
        phone.reboot(downtime_s=1.0)
        result = None
        deadline = time.monotonic() + 30
        while result is None:
            try:
                result = dev.shell("echo back", timeout=30)
            except DeviceError:
                assert time.monotonic() < deadline
        assert result.stdout == "back\n"
        assert phone.reboots >= 1
    finally:
        dev.close()


def test_v1_marker_parsing_survives_lookalike_output():
    wrapped = V1Command("echo hi")
    fake = wrapped.marker.replace("_", "-")
    raw = f"hi\n\n{fake}9{fake}\n\n{wrapped.marker}3{wrapped.marker}\nerr\n".encode()
    result = wrapped.parse(raw, "t")
    assert (result.exit_code, result.stdout, result.stderr) == (3, f"hi\n\n{fake}9{fake}\n", "err\n")
    with pytest.raises(DeviceError, match="no exit marker"):
        wrapped.parse(b"hi\n", "t")


def _file(path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for _ in range(size // (1 << 20)):
            block = os.urandom(1 << 20)
            digest.update(block)
            fh.write(block)
    return digest.hexdigest()


def _peak_python_memory(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_big_transfers_use_bounded_memory(device, scratch, tmp_path):
    """A model of hundreds of MB goes both ways intact with a bounded buffer (adb-shell's own push would not)."""
    size_mb = 400
    local = tmp_path / "big.bin"
    sha = _file(local, size_mb << 20)
    remote = f"{scratch}/big.bin"
    assert _peak_python_memory(lambda: device.push(local, remote)) < 16 << 20
    assert device.shell(["sha256sum", remote], timeout=300).stdout.split()[0] == sha
    back = tmp_path / "back.bin"
    assert _peak_python_memory(lambda: device.pull(remote, back)) < 16 << 20
    assert back.stat().st_size == size_mb << 20
    device.shell(["rm", "-f", remote])


def test_adb_server_path_for_phones_without_shell_v2(adb_server, tmp_path):
    """Android < 7 has no shell protocol v2: exec + markers give the same answers."""
    from slmdeploy.devices.emulator import EmulatedPhone

    with EmulatedPhone("pixel8", root=tmp_path / "old-phone", features=("cmd", "stat_v2")) as old:
        adb_server.connect(old.serial)
        # the real client sees an old phone: shell works, but its exit code is lost (always 0)
        legacy = adb_server.adb("-s", old.serial, "shell", "echo hi; exit 3")
        assert (legacy.returncode, legacy.stdout) == (0, "hi\n")
        dev = open_device(f"adb:{old.serial}")
        result = dev.shell(["sh", "-c", "echo out; echo err >&2; exit 5"])
        assert (result.exit_code, result.stdout, result.stderr) == (5, "out\n", "err\n")
        with pytest.raises(DeviceError, match="timed out"):
            dev.shell("sleep 30", timeout=1)
