"""Content-addressed export cache: the same model and target export once.

The key hashes the model's content fingerprint, the resolved target and the tool
versions; an entry is a finished artifact directory under ``<cache>/artifacts/<key>``,
created by renaming a temporary directory so a crash never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from slmdeploy._version import __version__

TOOLS = ("torch", "executorch", "torchao", "transformers", "coremltools", "litert-torch", "ai-edge-litert")


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


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def materialize(entry: Path, out_dir: Path) -> None:
    """Make ``out_dir`` hold the entry's files (hard links when possible), replacing what was there."""
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(entry, tmp, copy_function=_link_or_copy)  # subfolders too (e.g. an .mlpackage)
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)
