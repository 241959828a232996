"""The pinned llama.cpp source: the llama-cpp-python sdist from PyPI, checksum-checked, extracted once.

Why that sdist: it is on the package index every slmdeploy machine reaches (a git clone is
not), it pins one llama.cpp revision together with the Python bindings made for it, and it
carries everything slmdeploy uses (``convert_hf_to_gguf.py`` and ``gguf-py``, ``src/`` and
``ggml/``, ``tools/quantize``, ``tools/llama-bench``). ``fetch()`` runs ``pip download``
(the ordinary client, so proxies and mirrors apply), checks the file against
``SDIST_SHA256`` and extracts ``vendor/llama.cpp`` under the toolchain directory, atomically.
Offline: put the sdist anywhere and point ``$SLMDEPLOY_LLAMACPP_SDIST`` at it (same check).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from slmdeploy.errors import ToolchainError

PACKAGE = "llama-cpp-python"
VERSION = "0.3.36"
SDIST = f"llama_cpp_python-{VERSION}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SDIST_ENV = "SLMDEPLOY_LLAMACPP_SDIST"
TOOLCHAINS_ENV = "SLMDEPLOY_TOOLCHAINS"
_VENDORED = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
# Not needed to build, convert, quantize or benchmark (113 MB of the 190 MB tree).
_SKIP = ("docs/", "media/", "models/ggml-vocab-")
_STAMP = ".slmdeploy-source"


def toolchains_root() -> Path:
    """Where fetched and built toolchains live: ``$SLMDEPLOY_TOOLCHAINS`` or ``~/.cache/slmdeploy/toolchains``.

    Separate from the export cache (``$SLMDEPLOY_CACHE``) on purpose: tests give each checkout
    its own export cache, and a compiled toolchain is worth keeping across checkouts and CI runs.
    """
    root = os.environ.get(TOOLCHAINS_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "slmdeploy" / "toolchains"


def home() -> Path:
    """This llama.cpp version's directory: ``src/``, ``downloads/``, ``build-<key>/``."""
    return toolchains_root() / f"llama.cpp-{VERSION}"


def source_dir() -> Path:
    """The extracted llama.cpp tree (it exists once ``fetch()`` has run)."""
    return home() / "src"


def is_fetched() -> bool:
    return (source_dir() / _STAMP).is_file()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _download(progress: bool) -> Path:
    downloads = home() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / SDIST
    if target.is_file():
        return target
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"{PACKAGE}=={VERSION}", "-d", str(downloads), "--disable-pip-version-check"]
    if not progress:
        cmd.append("--quiet")
    done = subprocess.run(cmd, capture_output=not progress, text=True)
    if done.returncode != 0 or not target.is_file():
        why = (done.stderr or "").strip().splitlines()[-1:] if not progress else []
        raise ToolchainError(
            f"could not download the {PACKAGE}=={VERSION} sdist with pip ({'; '.join(why) or f'exit {done.returncode}'}); "
            f"on a machine without the package index, download {SDIST} elsewhere and set {SDIST_ENV}=/path/to/{SDIST}."
        )
    return target


def _sdist(progress: bool) -> Path:
    given = os.environ.get(SDIST_ENV)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ToolchainError(f"{SDIST_ENV}={given} is not a file; point it at {SDIST} or unset it.")
        return path
    return _download(progress)


def _extract(sdist: Path, into: Path) -> None:
    with tarfile.open(sdist, "r:gz") as tar:
        members = []
        for member in tar.getmembers():
            if not member.name.startswith(_VENDORED):
                continue
            rel = member.name[len(_VENDORED):]
            if not rel or rel.startswith(_SKIP):
                continue
            member.name = rel
            members.append(member)
        if not members:
            raise ToolchainError(f"{sdist} holds no {_VENDORED}; it is not the {PACKAGE} {VERSION} sdist.")
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(into, members=members, **kwargs)


def fetch(progress: bool = True) -> Path:
    """The llama.cpp source directory, downloaded and extracted first if needed.

    Raises ``ToolchainError`` when the download fails or the sdist's sha256 is not the pinned one.
    """
    if is_fetched():
        return source_dir()
    sdist = _sdist(progress)
    actual = sha256_of(sdist)
    if actual != SDIST_SHA256:
        if not os.environ.get(SDIST_ENV):
            sdist.unlink(missing_ok=True)  # a damaged download is not kept
        raise ToolchainError(
            f"{sdist} has sha256 {actual[:16]}…, not the pinned {SDIST_SHA256[:16]}… of {PACKAGE} {VERSION}: "
            "it is damaged or another file; delete it and fetch again."
        )
    tmp = home() / f".src-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _extract(sdist, tmp)
        (tmp / _STAMP).write_text(f"{PACKAGE} {VERSION} {SDIST_SHA256}\n")
        if is_fetched():  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(source_dir(), ignore_errors=True)
            tmp.rename(source_dir())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return source_dir()
