"""The ssh transport's two file paths, against the lab's real sshd (through its relay).

push/pull go through the system OpenSSH client (one ControlMaster connection, the host key
paramiko checked) when there is an ``ssh`` binary and a key file, else through paramiko's
SFTP. Both paths are run here: ``transfer="openssh"``/``"sftp"`` forces one, and the
fallbacks (no binary, no key file, a login OpenSSH cannot make) are checked one by one.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import stat
from pathlib import Path

import pytest

from slmdeploy.devices.ssh import SshDevice
from slmdeploy.errors import DeviceError

PATHS = ("openssh", "sftp")


def _board(lab, tmp_path: Path, **options) -> SshDevice:
    return SshDevice(lab.ssh_address, key_filename=lab.sshd.key, workdir=str(tmp_path / "board"), **options)


@pytest.fixture(params=PATHS)
def board(request, lab, tmp_path):
    dev = _board(lab, tmp_path, transfer=request.param)
    dev.shell(["mkdir", "-p", dev.workdir])
    yield dev
    dev.close()


def _random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("size", [0, 1, 5 * (1 << 20) + 123])
def test_round_trip_is_byte_exact_with_progress(board, tmp_path, size):
    data = _random_file(tmp_path / "blob.bin", size)
    remote = f"{board.workdir}/new dir/it's here/blob.bin"  # made on demand; quoted on the way
    pushed: list[int] = []
    board.push(tmp_path / "blob.bin", remote, progress=pushed.append)
    assert board.transfer_path == board.transfer  # the forced path was the one taken
    assert sum(pushed) == size and (len(pushed) > 1 or size <= 1 << 20)
    assert board.shell(["sha256sum", remote]).stdout.split()[0] == hashlib.sha256(data).hexdigest()
    back = tmp_path / "back" / "blob.bin"
    pulled: list[int] = []
    board.pull(remote, back, progress=pulled.append)
    assert back.read_bytes() == data and sum(pulled) == size
    assert not list(back.parent.glob("*.part"))


def test_push_into_a_directory_that_cannot_be_made_raises_clearly(board, tmp_path):
    _random_file(tmp_path / "x", 1000)
    missing = f"/proc/slmdeploy-{secrets.token_hex(4)}"  # procfs: not even root can make it
    with pytest.raises(DeviceError, match=f"push to {missing}/x failed: cannot create the directory {missing}"):
        board.push(tmp_path / "x", f"{missing}/x")
    assert board.shell("echo ok").stdout == "ok\n"


def test_push_onto_a_directory_raises(board, tmp_path):
    _random_file(tmp_path / "x", 1000)
    with pytest.raises(DeviceError, match=f"push to {board.workdir} failed"):
        board.push(tmp_path / "x", board.workdir)
    board.push(tmp_path / "x", f"{board.workdir}/x")  # and the next push works
    assert board.shell(["stat", "-c", "%s", f"{board.workdir}/x"]).stdout.strip() == "1000"


def test_openssh_messages_name_the_cause(lab, tmp_path):
    dev = _board(lab, tmp_path, transfer="openssh")
    _random_file(tmp_path / "x", 1000)
    missing = f"/proc/slmdeploy-{secrets.token_hex(4)}"
    with pytest.raises(DeviceError, match="No such file or directory"):
        dev.push(tmp_path / "x", f"{missing}/x")
    dev.shell(["mkdir", "-p", dev.workdir])
    with pytest.raises(DeviceError, match="cannot write the file on the board .*Is a directory"):
        dev.push(tmp_path / "x", dev.workdir)
    with pytest.raises(DeviceError, match=r"pull of .*/absent failed \(exit 1\): .*No such file"):
        dev.pull(f"{dev.workdir}/absent", tmp_path / "absent")
    assert not (tmp_path / "absent").exists() and not (tmp_path / "absent.part").exists()
    dev.close()


def test_default_is_openssh_and_info_says_so(lab, tmp_path):
    dev = lab.open("ssh", workdir=tmp_path / "board")
    assert dev.transfer == "auto"
    _random_file(tmp_path / "x", 10)
    dev.push(tmp_path / "x", f"{dev.workdir}/x")
    assert dev.transfer_path == "openssh"
    control = dev._openssh.dir
    assert stat.S_IMODE(os.stat(control).st_mode) == 0o700  # the control socket and pinned key are private
    info = dev.info()
    assert info.extra["file_transfer"] == "openssh" and "ControlMaster" in info.extra["file_transfer_detail"]
    dev.close()
    assert not os.path.exists(control)  # master told to exit, directory removed
    dev.pull(f"{dev.workdir}/x", tmp_path / "x-back")  # a closed device reconnects
    assert (tmp_path / "x-back").read_bytes() == (tmp_path / "x").read_bytes()
    dev.close()


def test_environment_forces_sftp(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_SSH_TRANSFER", "sftp")
    dev = lab.open("ssh", workdir=tmp_path / "board")
    data = _random_file(tmp_path / "x", 70_000)
    dev.push(tmp_path / "x", f"{dev.workdir}/x")
    dev.pull(f"{dev.workdir}/x", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data
    assert dev.transfer_path == "sftp" and "asked for" in dev.transfer_detail
    assert dev.info().extra["file_transfer"] == "sftp"
    dev.close()
    with pytest.raises(DeviceError, match="transfer must be one of"):
        _board(lab, tmp_path, transfer="carrier-pigeon")


def _round_trip(dev, tmp_path: Path) -> None:
    data = _random_file(tmp_path / "x", 200_000)
    dev.push(tmp_path / "x", f"{dev.workdir}/x")
    dev.pull(f"{dev.workdir}/x", tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == data


def test_without_an_ssh_binary_sftp_is_used(lab, tmp_path, monkeypatch):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    dev = _board(lab, tmp_path)
    _round_trip(dev, tmp_path)
    assert dev.transfer_path == "sftp" and "no ssh binary" in dev.transfer_detail
    dev.close()
    forced = _board(lab, tmp_path, transfer="openssh")
    with pytest.raises(DeviceError, match="transfer='openssh' was asked for, but no ssh binary"):
        forced.push(tmp_path / "x", f"{forced.workdir}/y")
    forced.close()


def test_without_a_key_file_sftp_is_used(lab, tmp_path, monkeypatch):
    """An agent-only (or password) login: nothing OpenSSH could be given with -i."""
    dev = _board(lab, tmp_path)
    dev.key_filename = None  # as if paramiko had logged in through the agent
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # and there is no ~/.ssh/id_*
    _round_trip(dev, tmp_path)
    assert dev.transfer_path == "sftp" and "no key file" in dev.transfer_detail
    dev.close()


def test_a_login_openssh_cannot_make_falls_back_to_sftp(lab, tmp_path, monkeypatch):
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "ssh").write_text("#!/bin/sh\necho 'Permission denied (publickey).' >&2\nexit 255\n")
    (fake / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    dev = _board(lab, tmp_path)
    _round_trip(dev, tmp_path)
    assert dev.transfer_path == "sftp"
    assert "could not log in" in dev.transfer_detail and "Permission denied" in dev.transfer_detail
    dev.close()


def test_openssh_accepts_only_the_host_key_paramiko_checked(lab, tmp_path, monkeypatch):
    import paramiko

    impostor = paramiko.ECDSAKey.generate()  # what a man in the middle would have shown paramiko
    dev = _board(lab, tmp_path, transfer="openssh")
    monkeypatch.setattr(dev._transport(), "get_remote_server_key", lambda: impostor)
    with pytest.raises(DeviceError, match="OpenSSH could not log in.*[Hh]ost key"):
        dev.push(Path(__file__), f"{dev.workdir}/x")
    dev.close()


def _fifo(dev) -> str:
    dev.shell(["mkdir", "-p", dev.workdir])
    fifo = f"{dev.workdir}/fifo-{secrets.token_hex(4)}"
    assert dev.shell(["mkfifo", fifo]).ok
    return fifo


def _unblock(dev, fifo: str) -> None:
    """Open the FIFO both ways and close it: whatever waits on it on the board goes on and ends."""
    dev.shell(f"exec 3<> {shlex.quote(fifo)}", timeout=10)
    dev.shell(["rm", "-f", fifo], timeout=10)


def test_a_pull_that_stalls_is_stopped(lab, tmp_path):
    dev = _board(lab, tmp_path, transfer="openssh", io_timeout=1)
    fifo = _fifo(dev)  # `cat FIFO` with no writer: not one byte ever comes
    try:
        with pytest.raises(DeviceError, match="stalled: nothing moved for 1 s"):
            dev.pull(fifo, tmp_path / "never")
    finally:
        _unblock(dev, fifo)
    assert not (tmp_path / "never").exists() and not (tmp_path / "never.part").exists()
    _round_trip(dev, tmp_path)  # the master connection is still good
    dev.close()


def test_a_push_that_stalls_is_stopped(lab, tmp_path):
    dev = _board(lab, tmp_path, transfer="openssh", io_timeout=1)
    fifo = _fifo(dev)  # `cat > FIFO` with no reader: the board stops taking data
    big = tmp_path / "sparse.bin"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)  # more than every buffer on the way; sparse, so nothing is written
    seen: list[int] = []
    try:
        with pytest.raises(DeviceError, match="stalled: nothing moved for 1 s"):
            dev.push(big, fifo, progress=seen.append)
    finally:
        _unblock(dev, fifo)
    assert sum(seen) < big.stat().st_size
    _round_trip(dev, tmp_path)
    dev.close()
