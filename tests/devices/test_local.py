"""The local device: every command has a time limit, and a timed-out one is killed with all it started."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slmdeploy.devices import local
from slmdeploy.devices.local import LocalDevice
from slmdeploy.errors import DeviceError


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_timed_out_command_takes_its_grandchildren_with_it(tmp_path):
    dev = LocalDevice(tmp_path / "dev")
    pidfile = tmp_path / "grandchild.pid"
    start = time.monotonic()
    with pytest.raises(DeviceError, match="timed out after 1 s on local"):
        dev.shell(f"sleep 300 & echo $! > {pidfile}; wait", timeout=1)
    assert time.monotonic() - start < 10  # the grandchild did not keep the pipes open
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_a_call_without_a_timeout_still_has_one(tmp_path, monkeypatch):
    monkeypatch.setattr(local, "DEFAULT_TIMEOUT", 0.5)
    with pytest.raises(DeviceError, match="timed out"):
        LocalDevice(tmp_path / "dev").shell("sleep 30")


def test_exit_status_and_streams(tmp_path):
    result = LocalDevice(tmp_path / "dev").shell("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
