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

RUNTIMES = {"executorch", "coreml", "tflite", "llamacpp"}
DELEGATES = {
    "executorch": {"xnnpack", "coreml", "mps", "vulkan", "qnn", "portable"},
    "coreml": {"ane", "gpu", "cpu"},  # compute units the model may use; the CPU is always allowed
    "tflite": {"xnnpack", "gpu", "nnapi"},  # runtime delegates the artifact is meant to run with
    "llamacpp": {"cpu"},  # ggml backends the file is meant to run on (this project builds the CPU one)
}

# Quantization schemes each runtime (and, for ExecuTorch, each delegate) can produce.
# fp32/fp16: float; 8da4w/8da8w: int8 dynamic activations, int4 (grouped) / int8 (per-channel)
# weights; 4w/8w: weight-only int4 (grouped) / int8 (per-channel). llama.cpp's file types keep llama.cpp's
# names (q8_0, q4_0, q4_k_m); the manifest maps them to these (export/llamacpp/quantize.py).
QUANTIZATION = {
    ("executorch", "xnnpack"): {"fp32", "8da4w", "8da8w"},
    ("executorch", "portable"): {"fp32"},
    ("executorch", "coreml"): {"fp32", "fp16"},
    ("executorch", "mps"): {"fp32", "fp16"},
    ("executorch", "vulkan"): {"fp32", "fp16"},
    ("executorch", "qnn"): {"fp16"},
    ("coreml", None): {"fp32", "fp16", "8w", "4w"},
    ("tflite", None): {"fp32", "8da8w", "8da4w", "8w"},
    ("llamacpp", None): {"fp32", "fp16", "q8_0", "q4_0", "q4_k_m"},
}

COREML_DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")
STATEFUL_COREML = ("iOS18", "macOS15")  # Core ML state (ct.StateType) exists from these on
# Weight schemes of the standalone Core ML exporter whose ops need the iOS 18 opset (int4 per block:
# constexpr_blockwise_shift_scale); int8 per channel (constexpr_affine_dequantize) works from iOS 16.
COREML_IOS18_QUANTIZATION = {"4w": "int4 block-wise weights (4w)"}
COREML_COMPUTE_UNITS = ("all", "cpu_and_ne", "cpu_and_gpu", "cpu_only")
QNN_SOCS = ("SM8450", "SM8475", "SM8550", "SM8650", "SM8750", "SM8850")

# Options each (runtime, delegate) understands: name -> check(value) -> error text or None.
_INT = lambda v: None if isinstance(v, int) and not isinstance(v, bool) and v > 0 else "a positive integer"  # noqa: E731


def _one_of(choices):
    return lambda v: None if v in choices else f"one of {list(choices)}"


OPTIONS = {
    ("executorch", "xnnpack"): {"group_size": _INT},
    ("executorch", "portable"): {},
    ("executorch", "coreml"): {
        "compute_units": _one_of(COREML_COMPUTE_UNITS),
        "minimum_deployment_target": _one_of(COREML_DEPLOYMENT_TARGETS),
    },
    ("executorch", "mps"): {},
    ("executorch", "vulkan"): {},
    ("executorch", "qnn"): {"soc": _one_of(QNN_SOCS)},
    ("coreml", None): {"minimum_deployment_target": _one_of(COREML_DEPLOYMENT_TARGETS), "group_size": _INT,
                       "prefill_len": _INT},
    ("tflite", None): {"group_size": _one_of((32, 64, 128, 256)), "prefill_len": _INT},
    ("llamacpp", None): {},
}


def _keys(runtime: str, delegates: tuple[str, ...]) -> list[tuple[str, str | None]]:
    return [(runtime, d) for d in delegates] if runtime == "executorch" else [(runtime, None)]


def _check_combination(where: str, runtime: str, delegates: tuple[str, ...], quantization: str, options: dict) -> None:
    """Reject what no exporter can make, before any work starts."""
    if not delegates:
        raise UnknownTargetError(f"{where}: delegates is empty; name at least one of {sorted(DELEGATES[runtime])}.")
    for key in _keys(runtime, delegates):
        what = f"{runtime} with the {key[1]} delegate" if key[1] else runtime
        if quantization not in QUANTIZATION[key]:
            raise UnknownTargetError(
                f"{where}: quantization {quantization!r} is not available for {what}; "
                f"it takes {sorted(QUANTIZATION[key])}."
            )
    known = {name: check for key in _keys(runtime, delegates) for name, check in OPTIONS[key].items()}
    for name, value in options.items():
        if name not in known:
            raise UnknownTargetError(
                f"{where}: option {name!r} does not apply to {runtime}/{'+'.join(delegates)}; "
                f"it takes {sorted(known) or 'no options'}."
            )
        problem = known[name](value)
        if problem:
            raise UnknownTargetError(f"{where}: option {name} = {value!r} must be {problem}.")
    if runtime == "executorch" and "portable" in delegates and len(delegates) > 1:
        raise UnknownTargetError(f"{where}: 'portable' means no delegate; it cannot be combined with {list(delegates)}.")
    if runtime == "coreml":
        _check_coreml_deployment(where, quantization, options)


def _check_coreml_deployment(where: str, quantization: str, options: dict) -> None:
    """Before iOS 18 / macOS 15 the standalone exporter keeps the KV cache as model I/O (no Core ML
    state there) and has only the older weight-quantization ops."""
    target_os = options.get("minimum_deployment_target", "iOS18")
    if target_os in STATEFUL_COREML:
        if "prefill_len" in options:
            raise UnknownTargetError(
                f"{where}: option prefill_len applies only to Core ML deployment targets before iOS18/macOS15 (KV cache "
                f"as model I/O); with {target_os} the cache is a state and prefill takes any length, so remove it."
            )
        return
    if quantization in COREML_IOS18_QUANTIZATION:
        raise UnknownTargetError(
            f"{where}: {COREML_IOS18_QUANTIZATION[quantization]} need the iOS18/macOS15 opset, not {target_os}; "
            f"for {target_os} use quantization = \"8w\" (int8 per-channel weights), \"fp16\" or \"fp32\", "
            "or set minimum_deployment_target = \"iOS18\"."
        )


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
    if not isinstance(data["delegates"], list):
        raise UnknownTargetError(f"{where}: delegates must be a list, e.g. delegates = [\"xnnpack\"].")
    delegates = tuple(data["delegates"])
    bad = [d for d in delegates if d not in DELEGATES[runtime]]
    if bad:
        raise UnknownTargetError(
            f"{where}: delegate(s) {bad} cannot be used with runtime {runtime!r}; "
            f"{runtime} takes {sorted(DELEGATES[runtime])}."
        )
    quantization = data["quantization"]
    options = dict(data.get("options", {}))
    _check_combination(where, runtime, delegates, quantization, options)
    max_seq_len = data.get("max_seq_len", 256)
    if not isinstance(max_seq_len, int) or max_seq_len < 2:
        raise UnknownTargetError(f"{where}: max_seq_len must be an integer >= 2, got {max_seq_len!r}.")
    return Target(
        name=data.get("name", name),
        description=data["description"],
        runtime=runtime,
        platform=data["platform"],
        delegates=delegates,
        quantization=quantization,
        max_seq_len=max_seq_len,
        options=options,
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
