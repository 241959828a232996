"""Dispatch to the runtime-specific exporters and their checks, and toolchain preflight.

What can *run* here decides the verification: ExecuTorch programs with XNNPACK or the
portable kernels, and TFLite models (LiteRT interpreter, CPU) run on this host and are
compared with eager PyTorch, and GGUF files run here through llama.cpp itself (libllama via
llama-cpp-python). Core ML needs macOS/iOS, and the Core ML, Vulkan, QNN and MPS
delegates need their device runtimes: those artifacts are "not verified on this host"
(a Core ML package still gets a structural spec check), never "passed".
"""

from __future__ import annotations

import importlib.util
from typing import Any

from slmdeploy.errors import ExportError
from slmdeploy.export.source import ModelSource
from slmdeploy.export.target import Target

# Where an artifact can run on this host, and so can be checked against eager PyTorch.
RUNNABLE_HERE = {("executorch", "xnnpack"), ("executorch", "portable")}
NOT_VERIFIED = "not verified on this host"

WHY_NOT_HERE = {
    "coreml": "Core ML programs run only on macOS/iOS (Core ML framework)",
    "vulkan": "the pip ExecuTorch runtime here has no Vulkan backend (build ExecuTorch with EXECUTORCH_BUILD_VULKAN=ON "
    "and run on a Vulkan GPU)",
    "qnn": "QNN programs run only on a Snapdragon device with the QNN runtime libraries",
    "mps": "MPS programs run only on macOS/iOS",
    "gpu": "the LiteRT GPU accelerator needs a device GPU (OpenCL / OpenGL ES / Metal); none here",
    "nnapi": "NNAPI exists only on Android",
}
# What a TFLite parity check runs on here; the other delegates a .tflite may run with are listed as unchecked.
TFLITE_CHECKED_ON = {"xnnpack": "LiteRT interpreter on this CPU (XNNPACK)"}

RUNTIME_PACKAGES = {
    "coreml": [("coremltools", "coremltools==9.0")],
    "tflite": [("litert_torch", "litert-torch==0.10.0"), ("ai_edge_litert", "ai-edge-litert>=2.3,<2.4")],
    "llamacpp": [("llama_cpp", "llama-cpp-python==0.3.36"), ("sentencepiece", "sentencepiece>=0.2")],
}
EXTRAS = {"coreml": "coreml", "tflite": "litert", "llamacpp": "llamacpp"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def preflight(target: Target) -> None:
    """Fail before any work when the target's toolchain is missing, saying what to install."""
    needs = list(RUNTIME_PACKAGES.get(target.runtime, []))
    if target.runtime == "tflite" and target.quantization != "fp32":
        needs.append(("ai_edge_quantizer", "ai-edge-quantizer>=0.10"))
    missing = [pip for module, pip in needs if not _installed(module)]
    if missing:
        extra = EXTRAS[target.runtime]
        raise ExportError(
            f"target {target.name} ({target.runtime}) needs {', '.join(missing)}: "
            f"`pip install {' '.join(repr(m) for m in missing)}` (or `pip install 'slmdeploy[{extra}]'`)."
        )
    if target.runtime == "executorch":
        from slmdeploy.export.executorch import lower

        lower.preflight(target.delegates)


def _exporter(runtime: str):
    if runtime == "coreml":
        from slmdeploy.export.coreml import exporter
    elif runtime == "tflite":
        from slmdeploy.export.tflite import exporter
    elif runtime == "llamacpp":
        from slmdeploy.export.llamacpp import exporter
    else:
        raise ExportError(f"runtime {runtime!r} has no exporter in this version of slmdeploy.")
    return exporter


def export(source: ModelSource, target: Target, max_seq_len: int, work, stage):
    exporter = _exporter(target.runtime)
    if source.is_llm:
        return exporter.export_llm(source, target, max_seq_len, work, stage)
    return exporter.export_module(source, target, work, stage)


def _not_verified(target: Target, result) -> dict[str, Any]:
    blockers = [WHY_NOT_HERE[d] for d in target.delegates if d in WHY_NOT_HERE]
    reason = "; ".join(blockers) or WHY_NOT_HERE["coreml"]
    verdict: dict[str, Any] = {"status": NOT_VERIFIED, "reason": reason}
    if "spec_check" in result.validation:  # a Core ML package; checked (and a failure raised) at export
        verdict["spec_check"] = result.validation["spec_check"]
    return verdict


def _tflite_coverage(target: Target) -> dict[str, Any]:
    """A passed TFLite check speaks for the CPU path only: say so, and why the rest is unchecked."""
    unchecked = {d: WHY_NOT_HERE.get(d, "no runtime for it here") for d in target.delegates if d not in TFLITE_CHECKED_ON}
    return {"checked_on": TFLITE_CHECKED_ON["xnnpack"], "not_verified_delegates": unchecked}


def verify(result, target: Target, source: ModelSource) -> dict[str, Any]:
    """Parity where the artifact runs here; a quantized one is judged against the same
    quantization run eagerly (``result.quantized_reference``), its float figures reported."""
    if target.runtime == "tflite":
        from slmdeploy.export.tflite import verify as tfl_verify

        if result.llm is not None:
            verdict = tfl_verify.verify_llm(result.program, result.llm, result.reference, result.quantized_reference)
        else:
            verdict = tfl_verify.verify_module(result.program, result.reference, source.example_inputs or (),
                                               result.quantized_reference)
        return verdict | _tflite_coverage(target)
    if target.runtime == "llamacpp":
        from slmdeploy.export.llamacpp import verify as gguf_verify

        return gguf_verify.verify_llm(result.program, target.quantization, result.llm.max_seq_len, result.reference,
                                      result.quantized_reference)
    runnable = target.runtime == "executorch" and all(("executorch", d) in RUNNABLE_HERE for d in target.delegates)
    if not runnable or result.program is None:
        return _not_verified(target, result)
    from slmdeploy.export.executorch import verify as et_verify

    if result.llm is not None:
        return et_verify.verify_llm(result.program, result.reference, result.quantized_reference,
                                    *et_verify.check_lengths(result.llm.max_seq_len))
    return et_verify.verify_module(result.program, result.reference, source.example_inputs or (), result.quantized_reference)
