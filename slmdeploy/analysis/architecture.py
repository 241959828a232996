"""The architecture facts a survey figure groups by: vocabulary, heads, the attention type they make,
and the KV cache the artifact itself declares (what the runtime allocates, read from the program)."""

from __future__ import annotations

import math
from typing import Any

from slmdeploy.analysis.roofline import DTYPE_BYTES

COLUMNS = ("arch_vocab_size", "arch_layers", "arch_heads", "arch_kv_heads", "arch_attention", "arch_cache_heads",
           "arch_cache_mib")


def attention_type(heads: int | None, kv_heads: int | None) -> str | None:
    """MHA (every head its own keys/values), MQA (one shared), GQA (groups in between); None if unknown."""
    if not heads or not kv_heads:
        return None
    if kv_heads == heads:
        return "MHA"
    return "MQA" if kv_heads == 1 else "GQA"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def program_cache(llm: dict[str, Any]) -> tuple[int | None, float | None]:
    """(heads, MiB) of the cache tensors the manifest's ``llm`` states: ExecuTorch program buffers,
    Core ML states, TFLite cache I/O, each ``[1, heads, positions, head_dim]``; Nones when not stated."""
    names, shape, dtype = llm.get("cache_tensors"), llm.get("cache_shape"), llm.get("cache_dtype")
    if not (isinstance(names, list) and names and isinstance(shape, list) and len(shape) == 4
            and all(_int(d) for d in shape) and dtype in DTYPE_BYTES):
        return None, None
    return shape[1], len(names) * math.prod(shape) * DTYPE_BYTES[dtype] / 2**20


def architecture_columns(manifest: dict[str, Any]) -> dict[str, Any]:
    """From a manifest's ``model.architecture`` (and ``llm.vocab_size``); None where a fact is absent."""
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    arch = model.get("architecture") if isinstance(model.get("architecture"), dict) else {}
    llm = manifest.get("llm") if isinstance(manifest.get("llm"), dict) else {}
    heads, kv_heads = _int(arch.get("heads")), _int(arch.get("kv_heads"))
    cache_heads, cache_mib = program_cache(llm)
    return {
        "arch_vocab_size": _int(llm.get("vocab_size")) or _int(arch.get("vocab_size")),
        "arch_layers": _int(arch.get("layers")),
        "arch_heads": heads,
        "arch_kv_heads": kv_heads,
        "arch_attention": attention_type(heads, kv_heads),
        "arch_cache_heads": cache_heads,
        "arch_cache_mib": cache_mib,
    }
