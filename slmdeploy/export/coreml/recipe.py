"""What a Core ML target means: deployment target, compute units, weight quantization.

Everything here is read from the target file; the exporter and the spec check both ask it.
"""

from __future__ import annotations

from typing import Any

from slmdeploy.export.target import STATEFUL_COREML, Target

DEFAULT_PREFILL = 128
# (compute units from the target's delegates, CPU always allowed) -> coremltools ComputeUnit name
UNITS = {frozenset(): "CPU_ONLY", frozenset({"ane"}): "CPU_AND_NE", frozenset({"gpu"}): "CPU_AND_GPU",
         frozenset({"ane", "gpu"}): "ALL"}
# opset (spec version) each deployment target implies
SPEC_VERSION = {"iOS16": 7, "macOS13": 7, "iOS17": 8, "macOS14": 8, "iOS18": 9, "macOS15": 9}
# the op holding quantized weights: iOS 18's blockwise op, or iOS 16's affine one (int8 only)
WEIGHT_OPS = {"8w": "constexpr_blockwise_shift_scale", "4w": "constexpr_blockwise_shift_scale"}
WEIGHT_OPS_BEFORE_IOS18 = {"8w": "constexpr_affine_dequantize"}


def deployment_target(target: Target) -> str:
    return target.options.get("minimum_deployment_target", "iOS18")


def stateful(target: Target) -> bool:
    """Whether the deployment target has Core ML state (else the KV cache is model I/O)."""
    return deployment_target(target) in STATEFUL_COREML


def weight_op(target: Target) -> str | None:
    ops = WEIGHT_OPS if stateful(target) else WEIGHT_OPS_BEFORE_IOS18
    return ops.get(target.quantization)


def prefill_len(target: Target, max_seq_len: int) -> int:
    """The stateless prefill package's fixed length: ``prefill_len``, at most half the cache."""
    return max(1, min(int(target.options.get("prefill_len", DEFAULT_PREFILL)), max_seq_len // 2))


def compute_units(target: Target) -> str:
    return UNITS[frozenset(target.delegates) - {"cpu"}]


def describe(target: Target) -> dict[str, Any]:
    scheme = target.quantization
    if scheme in ("fp32", "fp16"):
        return {"scheme": scheme, "weights": scheme, "activations": scheme, "method": "coremltools compute_precision"}
    bits = 4 if scheme == "4w" else 8
    desc = {"scheme": scheme, "weights": f"int{bits}", "activations": "fp16",
            "method": "coremltools.optimize.coreml.linear_quantize_weights (linear_symmetric)"}
    if bits == 4:
        desc["group_size"] = int(target.options.get("group_size", 32))
    return desc


def whole_program(target: Target) -> dict[str, Any]:
    """A Core ML program has no partitioning here: Core ML places ops on the device at load time."""
    return {
        "delegated_fraction": 1.0,
        "by_delegate": {"coreml": {"compute_units": compute_units(target)}},
        "fallback_ops": {},
        "note": "the whole program is Core ML; which ops run on the Neural Engine, GPU or CPU is decided by Core ML "
        "on the device (inspect with MLComputePlan on macOS)",
    }
