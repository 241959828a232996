"""Which harness runs an artifact on a device, and how it is invoked there."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

from slmdeploy.devices.base import DeviceInfo
from slmdeploy.errors import HarnessError
from slmdeploy.export.artifact import Artifact

CHOICES = ("auto", "python", "native")


@dataclass
class HarnessPlan:
    name: str  # "python" | "native"
    command: list[str] = field(default_factory=list)  # argv prefix, when nothing needs pushing
    files: list[Path] = field(default_factory=list)  # native: binary first, then its shared libraries


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plan(requested: str, transport: str, info: DeviceInfo, artifact: Artifact, python: str | None = None) -> HarnessPlan:
    if requested not in CHOICES:
        raise HarnessError(f"unknown harness {requested!r}; choose one of {', '.join(CHOICES)}.")
    runtime = artifact.manifest.runtime
    name = requested
    if name == "auto":
        name = "python" if transport == "local" and runtime == "executorch" else "native"
    if name == "python":
        if runtime not in ("executorch", "llamacpp"):
            raise HarnessError(f"the Python harness runs ExecuTorch programs and GGUF files only; {artifact.name} is "
                               f"{runtime}. Use --harness native.")
        interpreter = python or (sys.executable if transport == "local" else "python3")
        return HarnessPlan("python", command=[interpreter, "-m", "slmdeploy.harness.python_harness"])
    from slmdeploy.harness import native

    abi = info.exec_abi or info.abi or ""
    return HarnessPlan("native", files=native.bundle_for_abi(abi))
