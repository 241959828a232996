"""Dispatch to the runtime-specific exporters and their parity checks."""

from __future__ import annotations

from typing import Any

from slmdeploy.errors import ExportError
from slmdeploy.export.source import ModelSource
from slmdeploy.export.target import Target

# Where an artifact can run on this host, and so can be checked against eager PyTorch.
RUNNABLE_HERE = {("executorch", "xnnpack"), ("executorch", "portable")}
NOT_VERIFIED = "not verified on this host"


def export(source: ModelSource, target: Target, max_seq_len: int, work, stage):
    raise ExportError(
        f"runtime {target.runtime!r} (target {target.name}) has no exporter in this version of slmdeploy."
    )


def verify(result, target: Target, source: ModelSource) -> dict[str, Any]:
    runnable = all((target.runtime, d) in RUNNABLE_HERE for d in target.delegates)
    if not runnable or result.program is None:
        return {"status": NOT_VERIFIED, "reason": f"{target.runtime}/{'+'.join(target.delegates)} cannot run on this host"}
    from slmdeploy.export.executorch import verify as et_verify

    quantized = result.quantization["scheme"] not in ("fp32", "fp16")
    if result.llm is not None:
        return et_verify.verify_llm(result.program, result.reference, result.quantized_reference)
    return et_verify.verify_module(result.program, result.reference, source.example_inputs or (), quantized)
