"""Parity of a GGUF with eager PyTorch, run by llama.cpp itself through llama-cpp-python.

The check is the ExecuTorch one (``executorch.verify.judge_llm``: a prefill and 16
teacher-forced decode steps, logits compared at every position) with the GGUF behind a
one-method adapter. It runs twice:

- **as benchmarked** (the verdict's own figures): the context the harnesses and llama-bench
  use (f16 KV cache, flash attention on), judged with a tolerance per file type;
- **conversion** (``verification.conversion``): an f32 KV cache and no flash attention, so
  what is left is the converter's and the quantizer's work (and the int8 activations of
  quantized products): float files must match eager within 1e-3.

A quantized file is judged against its eager twin (``reference.twin``: the same weights,
dequantized); its agreement with the float model is reported, as for the other runtimes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmdeploy.export.executorch import verify as et_verify
from slmdeploy.llamacpp.session import GGUFMethod, Session

# The tolerance per target quantization (float: vs eager; quantized: vs the twin). Measured on llama-tiny,
# as benchmarked: fp32 9.6e-4 (flash attention and the KV cache in f16), fp16 1.1e-3, q8_0 0.011, q4_0 0.018,
# q4_k_m 0.019 (int8 activations); conversion: fp32 1e-6. docs/targets.md has the table.
TOLERANCES = {"fp32": 5e-3, "fp16": 1e-2, "q8_0": 0.05, "q4_0": 0.05, "q4_k_m": 0.05}
CONVERSION_TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2, "q8_0": 0.05, "q4_0": 0.05, "q4_k_m": 0.05}


def _judge(path: Path, n_ctx: int, reference, quantized_reference, tolerance: float, exact: bool) -> dict[str, Any]:
    with Session(path, n_ctx, exact=exact) as session:
        return et_verify.judge_llm(GGUFMethod(session), reference, quantized_reference, *et_verify.check_lengths(n_ctx),
                                   float_tolerance=tolerance, quant_tolerance=tolerance)


def verify_llm(path: Path, quantization: str, max_seq_len: int, reference, quantized_reference=None) -> dict[str, Any]:
    result = _judge(path, max_seq_len, reference, quantized_reference, TOLERANCES[quantization], exact=False)
    conversion = _judge(path, max_seq_len, reference, quantized_reference, CONVERSION_TOLERANCE[quantization],
                        exact=True)
    result["runtime"] = "llama.cpp (libllama through llama-cpp-python) on this CPU: f16 KV cache, flash attention auto"
    result["conversion"] = conversion | {"context": "f32 KV cache, no flash attention"}
    if conversion["status"] != "passed":
        result["status"] = "failed"
    return result
