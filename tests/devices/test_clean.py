"""What slmdeploy leaves on a device and its removal (devices/clean.py, `slmdeploy devices --clean`),
over the real transports; stale scratch files of commands a timeout or a lost link cut off."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmdeploy.cli.main import cli
from slmdeploy.devices import open_device
from slmdeploy.devices.clean import clean_device, kill_strays
from slmdeploy.devices.deploy import blob_path, deploy_file, is_deployed
from slmdeploy.errors import DeviceError

HOLDER = """
import sys, time
from slmdeploy.devices.lock import device_lock
with device_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _artifact(tmp_path: Path, size: int = 200_000) -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp_path / "model.pte"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def test_clean_removes_the_cache_and_the_next_deploy_pushes_again(device, tmp_path):
    local, sha = _artifact(tmp_path)
    deploy_file(device, local, sha, progress=False)
    assert device.shell(["mkdir", "-p", f"{device.workdir}/runs/old-run"]).ok
    report = clean_device(device)
    assert set(report["removed"]) == {"blobs", "runs"} and report["freed_kib"] >= 190
    assert not device.shell(["test", "-e", blob_path(device, sha)]).ok
    assert not is_deployed(device, sha, local.stat().st_size)
    assert deploy_file(device, local, sha, progress=False)[1] is True
    assert clean_device(device)["removed"].keys() == {"blobs"}


def test_clean_never_runs_under_a_run_in_progress(phone):
    dev = open_device(f"adb:{phone.serial}")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, f"adb-direct:{phone.serial}"],
                              stdout=subprocess.PIPE, text=True)  # the same phone, the other transport
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DeviceError, match="busy"):
            clean_device(dev, lock_timeout=0.3)
    finally:
        holder.kill()
        holder.wait()


def test_cli_clean_reports_json(phone, tmp_path):
    dev = open_device(f"adb-direct:{phone.serial}")
    local, sha = _artifact(tmp_path)
    deploy_file(dev, local, sha, progress=False)
    dev.close()
    result = CliRunner().invoke(cli, ["devices", "--clean", "-d", f"adb-direct:{phone.serial}", "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert report["device"] == f"adb-direct:{phone.serial}" and report["removed"]["blobs"] > 0
    result = CliRunner().invoke(cli, ["devices", "--clean"])
    assert result.exit_code == 2 and "--clean needs the device" in result.output


def _scratch(phone) -> Path:
    return phone.device_path("/data/local/tmp")


def _stderr_files(phone) -> set[str]:
    return {p.name for p in _scratch(phone).glob(".slmdeploy-stderr-*")}


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_adb_direct_removes_scratch_files_a_timeout_left_at_the_next_connection(phone):
    dev = open_device(f"adb-direct:{phone.serial}")
    before = _stderr_files(phone)
    with pytest.raises(DeviceError, match="timed out"):
        dev.shell("sleep 30", timeout=1)
    leaked = _stderr_files(phone) - before
    assert len(leaked) == 1  # adbd killed the shell before it removed its stderr file
    pid = int(next(iter(leaked)).rsplit("-", 1)[1])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    live = _scratch(phone) / f".slmdeploy-stderr-0123456789abcdef-{os.getpid()}"  # a command still running
    live.write_text("")
    assert dev.shell("echo hi").stdout == "hi\n"  # the timed-out connection was dropped: this one is new
    assert not leaked & _stderr_files(phone)
    assert live.exists()
    live.unlink()
    dev.close()


def test_stray_cleanup_removes_stale_scratch_files(phone):
    stale = _scratch(phone) / f".slmdeploy-stderr-fedcba9876543210-{_dead_pid()}"
    stale.write_text("old stderr")
    dev = open_device(f"adb:{phone.serial}")
    kill_strays(dev)
    assert not stale.exists()
