"""Verified, content-addressed, atomic deployment (devices/deploy.py) over the real transports."""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

import pytest

from slmdeploy.devices import open_device
from slmdeploy.devices.base import ShellResult
from slmdeploy.devices.deploy import blob_path, blob_states, deploy_file, deploy_files, is_deployed, pull_into
from slmdeploy.devices.loopback import CorruptingLink
from slmdeploy.errors import DeviceError


def _file(tmp_path: Path, size: int, name: str = "model.pte") -> tuple[Path, str]:
    path = tmp_path / name
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _ls_blobs(device) -> list[str]:
    return sorted(device.shell(f"ls -a {device.workdir}/blobs 2>/dev/null").stdout.split())


def test_unchanged_file_is_pushed_once(device, tmp_path):
    local, sha = _file(tmp_path, 2 * (1 << 20) + 7)
    remote, pushed = deploy_file(device, local, sha, progress=False)
    assert pushed and remote == blob_path(device, sha)
    assert device.shell(["sha256sum", remote]).stdout.split()[0] == sha
    assert device.shell(["cat", remote + ".ok"]).stdout.splitlines()[0] == sha
    assert deploy_file(device, local, sha, progress=False) == (remote, False)
    assert is_deployed(device, sha, local.stat().st_size)
    assert not [n for n in _ls_blobs(device) if n.startswith(".tmp-")]


def _device_sha(device, remote: str) -> str:
    return device.shell(["sha256sum", remote]).stdout.split()[0]


def test_a_same_size_corruption_of_a_cached_blob_is_found_and_pushed_again(device, tmp_path):
    """Flash, a stray `adb push`, an editing hand: the cached blob changes in place, size kept."""
    local, sha = _file(tmp_path, 300_000)
    remote, _ = deploy_file(device, local, sha, progress=False)
    q = shlex.quote(remote)
    assert device.shell(f"printf X | dd of={q} bs=1 seek=1000 conv=notrunc 2>/dev/null").ok
    assert _device_sha(device, remote) != sha and not is_deployed(device, sha, local.stat().st_size)
    assert deploy_file(device, local, sha, progress=False) == (remote, True)  # hashed on the device, pushed again
    assert _device_sha(device, remote) == sha and is_deployed(device, sha, local.stat().st_size)


def test_a_touched_but_intact_blob_is_hashed_again_not_pushed(device, tmp_path):
    local, sha = _file(tmp_path, 300_000)
    remote, _ = deploy_file(device, local, sha, progress=False)
    assert device.shell(["touch", remote]).ok
    assert not is_deployed(device, sha, local.stat().st_size)  # its identity changed since it was hashed
    assert deploy_file(device, local, sha, progress=False) == (remote, False)
    assert is_deployed(device, sha, local.stat().st_size)  # hashed again: the marker holds its new identity


def test_one_batched_check_finds_the_one_changed_blob_among_many(device, tmp_path):
    files = [_file(tmp_path, 4000 + i, f"f{i}") for i in range(3)]
    remotes = deploy_files(device, [(path, sha, False) for path, sha in files], progress=False)
    assert blob_states(device, [(sha, path.stat().st_size) for path, sha in files]) == {sha: "ok" for _, sha in files}
    assert device.shell(f"printf X | dd of={shlex.quote(remotes[1])} bs=1 seek=10 conv=notrunc 2>/dev/null").ok
    states = blob_states(device, [(sha, path.stat().st_size) for path, sha in files])
    assert [states[sha] for _, sha in files] == ["ok", "changed", "ok"]
    assert deploy_files(device, [(path, sha, False) for path, sha in files], progress=False) == remotes
    assert [_device_sha(device, r) for r in remotes] == [sha for _, sha in files]


def test_an_old_style_marker_is_verified_once(device, tmp_path):
    """Markers of earlier versions hold the sha alone: the blob is hashed again, then trusted."""
    local, sha = _file(tmp_path, 5000)
    remote, _ = deploy_file(device, local, sha, progress=False)
    assert device.shell(f"echo {sha} > {shlex.quote(remote + '.ok')}").ok
    assert deploy_file(device, local, sha, progress=False) == (remote, False)
    assert device.shell(["cat", remote + ".ok"]).stdout.splitlines()[1].split()[0] == "5000"


def test_executable_blob_is_made_executable(device, tmp_path):
    local, sha = _file(tmp_path, 1000, "harness")
    remote, _ = deploy_file(device, local, sha, executable=True, progress=False)
    assert device.shell(["test", "-x", remote]).ok


def test_corrupted_push_is_never_put_in_place(device, tmp_path):
    local, sha = _file(tmp_path, 300_000)
    with pytest.raises(DeviceError, match="arrived corrupted"):
        deploy_file(CorruptingLink(device), local, sha, progress=False)
    assert not device.shell(["test", "-e", blob_path(device, sha)]).ok
    assert not is_deployed(device, sha, local.stat().st_size)
    assert not [n for n in _ls_blobs(device) if n.startswith(".tmp-")]  # the temporary copy is gone too
    assert deploy_file(device, local, sha, progress=False)[1] is True  # a clean retry places it


def test_half_pushed_file_is_never_put_in_place(phone, tmp_path):
    dev = open_device(f"adb-direct:{phone.serial}")
    local, sha = _file(tmp_path, 3 << 20)
    phone.drop_next_push_after(1 << 20)
    with pytest.raises(DeviceError):
        deploy_file(dev, local, sha, progress=False)
    assert not is_deployed(dev, sha, local.stat().st_size)  # (this call also reconnects)
    assert not dev.shell(["test", "-e", blob_path(dev, sha)]).ok
    remote, pushed = deploy_file(dev, local, sha, progress=False)
    assert pushed and dev.shell(["sha256sum", remote]).stdout.split()[0] == sha
    dev.close()


def test_full_phone_storage_fails_cleanly(phone, tmp_path):
    dev = open_device(f"adb:{phone.serial}")
    local, sha = _file(tmp_path, 2 << 20)
    phone.fill_storage()
    try:
        with pytest.raises(DeviceError, match="(?i)space"):
            deploy_file(dev, local, sha, progress=False)
    finally:
        phone.set_storage_quota(None)
    assert not is_deployed(dev, sha, local.stat().st_size)
    assert not [n for n in _ls_blobs(dev) if n.startswith(".tmp-")]
    assert deploy_file(dev, local, sha, progress=False)[1]


class ReportsFullDisk:
    """The real device, except that df says 1 MiB is free (filling a real disk is not an option here)."""

    def __init__(self, device) -> None:
        self.device = device
        self.spec, self.workdir, self.transport = device.spec, device.workdir, device.transport
        self.pushes = 0

    def shell(self, cmd, timeout=None):
        if isinstance(cmd, list) and cmd[:2] == ["df", "-k"]:
            return ShellResult(0, "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/x 100 99 1024 99% /data\n", "")
        return self.device.shell(cmd, timeout)

    def push(self, *args, **kwargs):
        self.pushes += 1
        return self.device.push(*args, **kwargs)


def test_free_space_is_checked_before_pushing(phone, tmp_path):
    dev = ReportsFullDisk(open_device(f"adb:{phone.serial}"))
    local, sha = _file(tmp_path, 2 << 20)
    with pytest.raises(DeviceError, match="1 MiB free"):
        deploy_file(dev, local, sha, progress=False)
    assert dev.pushes == 0


def test_leftovers_of_a_dead_push_are_removed(device, tmp_path):
    local, sha = _file(tmp_path, 5000)
    blobs = f"{device.workdir}/blobs"
    device.shell(f"mkdir -p {blobs} && head -c 4000 /dev/zero > {blobs}/.tmp-{sha[:16]}-deadbeef")
    deploy_file(device, local, sha, progress=False)
    assert [n for n in _ls_blobs(device) if n.startswith(".tmp-")] == []


def test_pull_into_refuses_names_that_leave_the_run_dir(device, scratch, tmp_path):
    device.shell(f"echo trace > {scratch}/trace.jsonl && echo secret > {scratch}/secret")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert pull_into(device, scratch, run_dir, ["trace.jsonl", "missing.txt"]) == ["trace.jsonl"]
    assert (run_dir / "trace.jsonl").read_text() == "trace\n"
    for evil in ("../escaped", "sub/secret", "..", "", "/etc/passwd"):
        with pytest.raises(DeviceError, match="refusing"):
            pull_into(device, scratch, run_dir, [evil])
    (run_dir / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(DeviceError, match="refusing"):
        pull_into(device, scratch, run_dir, ["link"])
    assert not (tmp_path / "outside").exists() and not (tmp_path / "escaped").exists()


class _NoShell:
    """A device whose shell must not be reached."""

    spec, workdir, transport = "fake:no-shell", "/data/local/tmp/slmdeploy", "fake"

    def shell(self, cmd, timeout=None):
        raise AssertionError(f"reached the device shell: {cmd}")


@pytest.mark.parametrize("sha", ["$(reboot)" + "0" * 55, "A" * 64, "0" * 63, "0" * 64 + "\n", "0" * 64 + "; rm -rf /"])
def test_a_malformed_sha256_never_reaches_the_shell(tmp_path, sha):
    local = tmp_path / "model.pte"
    local.write_bytes(b"x")
    with pytest.raises(DeviceError, match="invalid sha256"):
        deploy_file(_NoShell(), local, sha, progress=False)
    with pytest.raises(DeviceError, match="invalid sha256"):
        is_deployed(_NoShell(), sha, 1)
