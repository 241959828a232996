"""Verified deployment onto a device: content-addressed, atomic, checked after every push.

Files live on the device as ``<workdir>/blobs/<sha256>``. A push goes to a temporary name,
is hashed *on the device*, and only then renamed into place, so a corrupted or
half-pushed file is never run. An unchanged file is not pushed again: its blob and the
``.ok`` marker written after verification are still there.

Pulls go the other way only into a given local directory, under names checked here
(``pull_into``): a name a device hands back can never point outside that directory.
"""

from __future__ import annotations

import re
import secrets
import shlex
from pathlib import Path

from slmdeploy.devices.base import Device
from slmdeploy.errors import DeviceError
from slmdeploy.progress import transfer_progress

HEADROOM = 1.05  # free space wanted beyond the file size
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits: it becomes a file name and part of shell lines."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise DeviceError(f"invalid sha256 {str(sha256)[:80]!r}: expected 64 lowercase hex digits "
                          "(as in the artifact's manifest.json); re-export the artifact if it was edited.")
    return sha256


def blob_path(device: Device, sha256: str) -> str:
    return f"{device.workdir}/blobs/{check_sha256(sha256)}"


def _run(device: Device, cmd: list[str] | str, what: str, timeout: float = 120.0) -> str:
    result = device.shell(cmd, timeout=timeout)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DeviceError(f"{device.spec}: {what} failed (exit {result.exit_code}): {detail[-1] if detail else ''}")
    return result.stdout


def remote_sha256(device: Device, path: str, timeout: float = 600.0) -> str:
    q = shlex.quote(path)
    # coreutils/busybox/toybox (Android 8+) name it sha256sum; older toolboxes only via toybox/busybox
    cmd = f"sha256sum {q} 2>/dev/null || toybox sha256sum {q} 2>/dev/null || busybox sha256sum {q}"
    out = _run(device, cmd, f"sha256 of {path}", timeout=timeout)
    return out.split()[0] if out.split() else ""


def parse_df_available(stdout: str) -> int | None:
    """The 'Available' KiB of ``df -k PATH`` output (a long device name may wrap the row)."""
    fields = [f for line in stdout.strip().splitlines()[1:] for f in line.split()]
    numbers = [f for f in fields if f.isdigit()]
    return int(numbers[2]) if len(numbers) >= 3 else None


def free_kib(device: Device, path: str) -> int | None:
    """Available KiB on the file system holding ``path`` (``df -k``; None if unreadable)."""
    result = device.shell(["df", "-k", path], timeout=30)
    return parse_df_available(result.stdout) if result.ok else None


def is_deployed(device: Device, sha256: str, size: int) -> bool:
    blob = blob_path(device, sha256)
    q = shlex.quote
    result = device.shell(f"cat {q(blob + '.ok')} 2>/dev/null && stat -c %s {q(blob)} 2>/dev/null", timeout=30)
    parts = result.stdout.split()
    return result.ok and len(parts) == 2 and parts[0] == sha256 and parts[1] == str(size)


def deploy_file(
    device: Device, local: Path, sha256: str, *, executable: bool = False, progress: bool = True, timeout: float = 600.0
) -> tuple[str, bool]:
    """Put ``local`` on the device; returns (remote path, pushed?)."""
    local = Path(local)
    size = local.stat().st_size
    blob = blob_path(device, sha256)
    if is_deployed(device, sha256, size):
        return blob, False
    blobs = f"{device.workdir}/blobs"
    _run(device, ["mkdir", "-p", blobs], "mkdir")
    available = free_kib(device, blobs)
    if available is not None and available * 1024 < size * HEADROOM:
        raise DeviceError(
            f"{device.spec} has {available // 1024} MiB free in {blobs}, {local.name} needs {size // (1 << 20) + 1} MiB: "
            f"free space on the device (`slmdeploy devices --clean -d {device.spec}` removes slmdeploy's cached blobs)."
        )
    # Leftovers of earlier pushes of this file that died half-way (the caller holds the
    # device lock, so none of them is still being written); they would only eat space.
    device.shell(f"rm -f {shlex.quote(f'{blobs}/.tmp-{sha256[:16]}-')}*", timeout=30)
    tmp = f"{blobs}/.tmp-{sha256[:16]}-{secrets.token_hex(4)}"
    try:
        with transfer_progress(progress) as bar:
            task = bar.add_task(f"push {local.name} -> {device.spec}", total=size)
            device.push(local, tmp, progress=lambda n: bar.advance(task, n))
        got = remote_sha256(device, tmp, timeout=timeout)
        if got != sha256:
            raise DeviceError(
                f"{device.spec}: {local.name} arrived corrupted (sha256 {got[:12] or 'unreadable'} != {sha256[:12]}); "
                "it was not put in place. Retry; check the cable or network if it repeats."
            )
        q = shlex.quote
        chmod = f"chmod 755 {q(tmp)} && " if executable else ""
        _run(device, f"{chmod}mv -f {q(tmp)} {q(blob)} && echo {q(sha256)} > {q(blob + '.ok')}", "atomic rename")
    except BaseException:
        try:  # the link may be gone: the next push of this file removes the leftover
            device.shell(["rm", "-f", tmp], timeout=30)
        except Exception:
            pass
        raise
    return blob, True


def safe_name(name: str) -> str:
    """``name`` if it is a plain file name; DeviceError for anything that could leave a directory."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name or name.startswith("-"):
        raise DeviceError(f"refusing to pull {name!r}: only plain file names are pulled")
    return name


def pull_into(device: Device, remote_dir: str, local_dir: Path, names: list[str] | tuple[str, ...],
              progress: bool = False) -> list[str]:
    """Pull ``remote_dir/NAME`` to ``local_dir/NAME`` for each name that exists; returns those pulled.

    Names are checked (``safe_name``) and the local path is resolved and required to lie in
    ``local_dir``, so neither a caller's name nor a symlink placed there earlier can make a
    pull write elsewhere. A file that is missing or fails to transfer is skipped.
    """
    root = Path(local_dir).resolve()
    pulled = []
    for name in names:
        target = (root / safe_name(name))
        if target.is_symlink() or target.resolve().parent != root:
            raise DeviceError(f"refusing to pull {name!r}: {target} does not stay inside {root}")
        try:
            with transfer_progress(progress) as bar:
                task = bar.add_task(f"pull {name} <- {device.spec}", total=None)
                device.pull(f"{remote_dir}/{name}", target, progress=lambda n: bar.advance(task, n))
        except (DeviceError, OSError):
            continue
        pulled.append(name)
    return pulled
