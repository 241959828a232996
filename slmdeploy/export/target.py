"""Export targets: declarative recipes (runtime + delegates + quantization + options).

A target is a TOML file in ``targets/`` (shipped) or any path the user gives. It is
checked when loaded, so an impossible combination is rejected before any work starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmdeploy.errors import UnknownTargetError

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"

RUNTIMES = {"executorch", "coreml", "tflite"}
DELEGATES = {
    "executorch": {"xnnpack", "coreml", "mps", "vulkan", "qnn", "portable"},
    "coreml": {"ane", "gpu", "cpu"},
    "tflite": {"xnnpack", "gpu", "nnapi"},
}


@dataclass(frozen=True)
class Target:
    """One export recipe. ``platform`` says where the artifact is meant to run."""

    name: str
    description: str
    runtime: str
    platform: str
    delegates: tuple[str, ...]
    quantization: str
    max_seq_len: int = 256
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "runtime": self.runtime,
            "platform": self.platform,
            "delegates": list(self.delegates),
            "quantization": self.quantization,
            "max_seq_len": self.max_seq_len,
            "options": dict(self.options),
        }


def _parse(name: str, data: dict[str, Any], path: Path) -> Target:
    where = f"target file {path}"
    missing = [k for k in ("description", "runtime", "platform", "delegates", "quantization") if k not in data]
    if missing:
        raise UnknownTargetError(f"{where} lacks {', '.join(missing)}; see docs/targets.md for the format.")
    runtime = data["runtime"]
    if runtime not in RUNTIMES:
        raise UnknownTargetError(f"{where}: runtime {runtime!r} is not one of {sorted(RUNTIMES)}.")
    delegates = tuple(data["delegates"])
    bad = [d for d in delegates if d not in DELEGATES[runtime]]
    if bad:
        raise UnknownTargetError(
            f"{where}: delegate(s) {bad} cannot be used with runtime {runtime!r}; "
            f"{runtime} takes {sorted(DELEGATES[runtime])}."
        )
    return Target(
        name=data.get("name", name),
        description=data["description"],
        runtime=runtime,
        platform=data["platform"],
        delegates=delegates,
        quantization=data["quantization"],
        max_seq_len=int(data.get("max_seq_len", 256)),
        options=dict(data.get("options", {})),
        path=path,
    )


def load_target(name_or_path: str | Path) -> Target:
    """A shipped target by name, or a user's target file by path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise UnknownTargetError(f"target file {candidate} does not exist.")
        path = candidate
    else:
        path = TARGETS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise UnknownTargetError(
                f"unknown target {str(name_or_path)!r}. Shipped targets: {', '.join(t.name for t in list_targets())}; "
                "or pass the path of a target .toml file."
            )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise UnknownTargetError(f"target file {path} is not valid TOML: {err}") from None
    return _parse(path.stem, data, path)


def list_targets() -> list[Target]:
    return [load_target(p) for p in sorted(TARGETS_DIR.glob("*.toml"))]
