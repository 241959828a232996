"""Verified deployment onto a device: content-addressed, atomic, checked after every push.

Files live on the device as ``<workdir>/blobs/<sha256>``. A push goes to a temporary name,
is hashed *on the device*, and only then renamed into place, so a corrupted or
half-pushed file is never run. An unchanged file is not pushed again: its blob and the
``.ok`` marker written after verification are still there.

The marker holds the sha256 and the blob's identity as the device's ``stat`` saw it right
after the hash (size, inode, modification and change times, to the nanosecond where the
device keeps them). A blob whose identity no longer matches was written to, replaced or
touched since it was hashed: it is hashed again on the device before it may run, and pushed
again if it no longer matches. So what runs is what was hashed, without hashing gigabytes
before every run.

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


STAT_FORMAT = "%s %i %y %z"  # size, inode, mtime, ctime (GNU, toybox and busybox stat all know these)
_RECORD = "==slmdeploy-blob=="  # separates the blobs' records in one answer


def _identity_cmd(path: str) -> str:
    return f"stat -c {shlex.quote(STAT_FORMAT)} {shlex.quote(path)}"


def blob_states(device: Device, blobs: list[tuple[str, int]]) -> dict[str, str]:
    """Each (sha256, size) blob's state, asked in one shell command: ``"ok"`` (marker and identity
    match), ``"changed"`` (the blob is there, but not as it was hashed) or ``"absent"``."""
    q = shlex.quote
    checks = [f"echo {_RECORD} {q(sha)}; cat {q(blob_path(device, sha) + '.ok')} 2>/dev/null; echo --; "
              f"{_identity_cmd(blob_path(device, sha))} 2>/dev/null" for sha, _ in blobs]
    out = device.shell("; ".join(checks), timeout=30).stdout if checks else ""
    answers = {}
    for record in out.split(_RECORD)[1:]:
        head, _, rest = record.partition("\n")
        marker, _, now = rest.partition("--\n")
        answers[head.strip()] = (marker.strip().splitlines(), now.strip())
    states = {}
    for sha, size in blobs:
        marker, now = answers.get(sha, ([], ""))
        if not now or now.split()[0] != str(size):
            states[sha] = "absent"
        else:
            states[sha] = "ok" if marker == [sha, now] else "changed"
    return states


def deployed_blobs(device: Device, blobs: list[tuple[str, int]]) -> set[str]:
    """Which of the (sha256, size) blobs are in place and unchanged since they were hashed (one shell call)."""
    return {sha for sha, state in blob_states(device, blobs).items() if state == "ok"}


def is_deployed(device: Device, sha256: str, size: int) -> bool:
    return sha256 in deployed_blobs(device, [(sha256, size)])


def _mark(device: Device, sha256: str) -> None:
    """Record the verified blob's identity (after the hash, after any chmod or rename)."""
    blob = blob_path(device, sha256)
    q = shlex.quote
    _run(device, f"{{ echo {q(sha256)} && {_identity_cmd(blob)}; }} > {q(blob + '.ok.tmp')} && "
                 f"mv -f {q(blob + '.ok.tmp')} {q(blob + '.ok')}", "writing the blob's marker")


def deploy_file(
    device: Device, local: Path, sha256: str, *, executable: bool = False, progress: bool = True, timeout: float = 600.0
) -> tuple[str, bool]:
    """Put ``local`` on the device; returns (remote path, pushed?)."""
    local = Path(local)
    size = local.stat().st_size
    blob = blob_path(device, sha256)
    state = blob_states(device, [(sha256, size)])[sha256]
    if state == "ok":
        return blob, False
    if state == "changed":  # touched since it was hashed: hash it again, on the device
        if remote_sha256(device, blob, timeout=timeout) == sha256:
            _mark(device, sha256)
            return blob, False
        _run(device, ["rm", "-f", blob, blob + ".ok"], "removing a corrupted blob")
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
        _run(device, f"{chmod}mv -f {q(tmp)} {q(blob)}", "atomic rename")
        _mark(device, sha256)
    except BaseException:
        try:  # the link may be gone: the next push of this file removes the leftover
            device.shell(["rm", "-f", tmp], timeout=30)
        except Exception:
            pass
        raise
    return blob, True


def deploy_files(device: Device, files: list[tuple[Path, str, bool]], *, progress: bool = True) -> list[str]:
    """``deploy_file`` for many (path, sha256, executable) at once: one round trip when all are in place."""
    present = deployed_blobs(device, [(sha, Path(path).stat().st_size) for path, sha, _ in files])
    return [blob_path(device, sha) if sha in present else
            deploy_file(device, path, sha, executable=executable, progress=progress)[0]
            for path, sha, executable in files]


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
            if not progress:  # a study pulls thousands of small traces: no bar to build for each
                device.pull(f"{remote_dir}/{name}", target)
            else:
                with transfer_progress() as bar:
                    task = bar.add_task(f"pull {name} <- {device.spec}", total=None)
                    device.pull(f"{remote_dir}/{name}", target, progress=lambda n: bar.advance(task, n))
        except (DeviceError, OSError):
            continue
        pulled.append(name)
    return pulled
