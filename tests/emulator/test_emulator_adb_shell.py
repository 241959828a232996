"""adb-shell, the pure-Python client, against the emulated phone (no adb server)."""

from __future__ import annotations

import os

import pytest
from adb_shell.adb_device import AdbDeviceTcp
from adb_shell.auth.keygen import keygen
from adb_shell.auth.sign_pythonrsa import PythonRSASigner


@pytest.fixture
def adb_shell_device(emulated_phone, tmp_path):
    keygen(str(tmp_path / "adbkey"))
    signer = PythonRSASigner.FromRSAKeyPath(str(tmp_path / "adbkey"))
    device = AdbDeviceTcp("127.0.0.1", emulated_phone.port, default_transport_timeout_s=10)
    assert device.connect(rsa_keys=[signer], auth_timeout_s=5)
    yield device
    device.close()


def test_shell(adb_shell_device, emulated_phone):
    assert adb_shell_device.shell("getprop ro.product.device") == "shiba\n"
    assert adb_shell_device.shell("echo out; echo err >&2") == "out\nerr\n"  # v1: merged


def test_push_pull(adb_shell_device, emulated_phone, tmp_path):
    payload = os.urandom(2 * 1024 * 1024 + 7)
    (tmp_path / "in.bin").write_bytes(payload)
    adb_shell_device.push(str(tmp_path / "in.bin"), "/sdcard/Download/in.bin")
    assert emulated_phone.device_path("/sdcard/Download/in.bin").read_bytes() == payload
    assert adb_shell_device.shell("ls /storage/emulated/0/Download") == "in.bin\n"
    adb_shell_device.pull("/sdcard/Download/in.bin", str(tmp_path / "out.bin"))
    assert (tmp_path / "out.bin").read_bytes() == payload
    names = {bytes(f.filename) for f in adb_shell_device.list("/sdcard/Download")}
    assert names == {b".", b"..", b"in.bin"}


def test_python_client_and_adb_server_side_by_side(adb_shell_device, emulated_phone, adb_server):
    adb_server.connect(emulated_phone.serial)
    try:
        assert emulated_phone.connections == 2
        assert adb_server.adb("-s", emulated_phone.serial, "shell", "echo a").stdout == "a\n"
        assert adb_shell_device.shell("echo b") == "b\n"
    finally:
        adb_server.disconnect(emulated_phone.serial)
