"""Content-addressed export cache: the same model and target export once.

The key hashes the model's content fingerprint, the resolved target and the tool
versions; an entry is a finished artifact directory under ``<cache>/artifacts/<key>``,
created by renaming a temporary directory so a crash never leaves a half entry.

An output directory gets its own copy of the entry's files (a copy-on-write clone where the
file system has them), never a hard link: editing one artifact must not change the cache
entry, nor every other artifact made from it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from slmdeploy._version import __version__

TOOLS = ("torch", "executorch", "torchao", "transformers", "coremltools", "litert-torch", "ai-edge-litert",
         "llama-cpp-python")  # llama-cpp-python is pinned to the llama.cpp source slmdeploy builds


def cache_root() -> Path:
    root = os.environ.get("SLMDEPLOY_CACHE") or Path.home() / ".cache" / "slmdeploy"
    return Path(root)


@lru_cache(maxsize=1)
def _exporter_code() -> str:
    """A hash of the exporter's own source, so a changed exporter never serves stale artifacts."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def tool_versions() -> dict[str, str]:
    import platform

    versions = {"slmdeploy": __version__, "slmdeploy_export_code": _exporter_code(), "python": platform.python_version()}
    for dist in TOOLS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def cache_key(fingerprint: str, target: dict[str, Any], tools: dict[str, str]) -> str:
    payload = json.dumps({"model": fingerprint, "target": target, "tools": tools}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_dir(key: str) -> Path:
    return cache_root() / "artifacts" / key


def staging_dir(key: str) -> Path:
    path = cache_root() / "artifacts" / f".tmp-{key[:16]}-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def commit(staging: Path, key: str, replace: bool = False) -> Path:
    """Publish a finished staging directory as the cache entry (atomic rename).

    ``replace`` (a forced rebuild) swaps out an existing entry; otherwise an existing one wins.
    """
    final = entry_dir(key)
    old = None
    if final.exists():
        if not replace:  # another process won the race; its entry is as good as ours
            shutil.rmtree(staging, ignore_errors=True)
            return final
        old = final.with_name(f".old-{key[:16]}-{os.getpid()}")
        final.rename(old)
    try:
        staging.rename(final)
    except OSError:  # a concurrent export published first: keep that one
        shutil.rmtree(staging, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


FICLONE = 0x40049409  # Linux ioctl: dst shares src's blocks copy-on-write (btrfs, XFS, bcachefs, overlayfs on them)


def clone_or_copy(src: str, dst: str) -> None:
    """``dst`` becomes an independent copy of ``src``: a reflink where the file system has them, else a copy."""
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
        shutil.copystat(src, dst)
    except OSError:  # no reflinks here (ext4, tmpfs, across file systems): copy the bytes
        shutil.copy2(src, dst)


def _unchanged(entry: Path, out_dir: Path) -> bool:
    """``out_dir`` already holds this entry's files as placed (same manifest, sizes and mtimes): keep them."""
    try:
        if (out_dir / "manifest.json").read_bytes() != (entry / "manifest.json").read_bytes():
            return False
        for src in (p for p in entry.rglob("*") if p.is_file()):
            dst = out_dir / src.relative_to(entry)
            if dst.is_symlink() or not dst.is_file():
                return False
            a, b = src.stat(), dst.stat()
            # a hard link (an older slmdeploy made them) is replaced by a copy
            if (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns) or (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
                return False
    except OSError:
        return False
    return True


def materialize(entry: Path, out_dir: Path) -> None:
    """Make ``out_dir`` hold copies of the entry's files, replacing what was there (kept if already identical)."""
    if _unchanged(entry, out_dir):
        return
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(entry, tmp, copy_function=clone_or_copy)  # subfolders too (e.g. an .mlpackage)
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)
