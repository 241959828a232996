"""Roofline of LLM decode: bytes read per token, and how much of the measured memory bandwidth that reaches.

A decode step of a small LLM reads every weight once and the KV cache up to its position;
at batch 1 that traffic, not arithmetic, bounds it. So

    bytes per token   = weight bytes + 2 x layers x kv_heads x head_dim x position x bytes per element
                        (averaged over the decode positions of the workload)
    fraction reached  = bytes per token x decode tok/s / measured bandwidth

The bandwidth comes from the run's own ``bandwidth`` trace event, else from the device's last
measurement (``slmdeploy.devices.bandwidth_store``). Facts that are missing are never guessed:
without the KV cache's shape or element type the bytes are the weights alone, and
``decode_bytes_basis`` says so. docs/roofline.md has the details.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmdeploy.harness.trace import Trace

DTYPE_BYTES = {"float64": 8, "float32": 4, "fp32": 4, "f32": 4, "float16": 2, "fp16": 2, "f16": 2,
               "bfloat16": 2, "bf16": 2, "int8": 1, "uint8": 1}
# Where a manifest states no cache dtype, the calling convention fixes it: the ExecuTorch exporter
# keeps the static KV cache in the eager model's float32, whatever the weights' quantization.
CONVENTION_KV_DTYPE = {"slmdeploy.llm/1": "float32", "llama.cpp/gguf": "float16"}
KV_FACTS = ("layers", "kv_heads", "head_dim")
BASIS_FULL = "weights+kv"

COLUMNS = ("bandwidth_gbps", "bandwidth_source", "bandwidth_threads", "decode_weight_bytes",
           "decode_kv_bytes_per_token", "decode_bytes_per_token", "decode_bytes_basis",
           "decode_achieved_gbps", "decode_bandwidth_fraction")


@dataclass
class KVFacts:
    """The KV cache's shape and element type; a None field is a fact no file stated."""

    layers: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    dtype: str | None = None

    def missing(self) -> list[str]:
        gone = [name for name in KV_FACTS if getattr(self, name) is None]
        if self.dtype is None:
            gone.append("kv dtype")
        elif self.dtype not in DTYPE_BYTES:
            gone.append(f"size of kv dtype {self.dtype!r}")
        return gone

    def bytes_per_position(self) -> int | None:
        """Bytes of keys and values one position holds across all layers (None if a fact is missing)."""
        if self.missing():
            return None
        return 2 * self.layers * self.kv_heads * self.head_dim * DTYPE_BYTES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "kv_heads": self.kv_heads, "head_dim": self.head_dim, "dtype": self.dtype}


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def kv_facts(manifest: dict[str, Any] | None) -> KVFacts:
    """From a manifest (a dict as read from manifest.json): ``model.architecture`` and ``llm.cache_dtype``."""
    if not isinstance(manifest, dict):
        return KVFacts()
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    arch = model.get("architecture") if isinstance(model.get("architecture"), dict) else {}
    llm = manifest.get("llm") if isinstance(manifest.get("llm"), dict) else {}
    dtype = llm.get("cache_dtype")
    if not isinstance(dtype, str):
        dtype = CONVENTION_KV_DTYPE.get(llm.get("convention")) if llm else None
    return KVFacts(*(_positive_int(arch.get(name)) for name in KV_FACTS), dtype=dtype)


def run_kv_facts(run_dir: Path, meta: dict[str, Any]) -> KVFacts:
    """run.json's ``kv_cache`` (bench writes it), else the manifest.json copied into the run directory."""
    stated = meta.get("kv_cache")
    if isinstance(stated, dict):
        return KVFacts(*(_positive_int(stated.get(n)) for n in KV_FACTS),
                       dtype=stated.get("dtype") if isinstance(stated.get("dtype"), str) else None)
    try:
        return kv_facts(json.loads((run_dir / "manifest.json").read_text()))
    except (OSError, ValueError):
        return KVFacts()


def mean_kv_positions(start_pos: int, tokens: int) -> float:
    """The cached positions a decode step reads, averaged over steps at ``start_pos .. start_pos + tokens - 1``."""
    return start_pos + (tokens - 1) / 2


def decode_bytes_per_token(weight_bytes: float, kv_per_position: int | None, start_pos: int,
                           tokens: int) -> tuple[float, float | None]:
    """(total, KV part) bytes read per decode token; the KV part is None when its facts are missing."""
    if kv_per_position is None:
        return float(weight_bytes), None
    kv = kv_per_position * mean_kv_positions(start_pos, tokens)
    return weight_bytes + kv, kv


def bandwidth_fraction(bytes_per_token: float | None, decode_tps: float | None,
                       bandwidth_gbps: float | None) -> float | None:
    """Share of the measured bandwidth that decode's traffic reaches (bytes/token x tok/s / bandwidth)."""
    if not bytes_per_token or not decode_tps or not bandwidth_gbps:
        return None
    return bytes_per_token * decode_tps / (bandwidth_gbps * 1e9)


def trace_bandwidth(trace: Trace) -> dict[str, Any] | None:
    """The run's own probe: the last ``bandwidth`` event with a usable ``best_gbps``."""
    for event in reversed(trace.of("bandwidth")):
        gbps = event.get("best_gbps")
        if isinstance(gbps, (int, float)) and not isinstance(gbps, bool) and math.isfinite(gbps) and gbps > 0:
            return event
    return None


def weight_bytes(trace: Trace, meta: dict[str, Any]) -> int | None:
    """llama.cpp's own count of weight bytes where the trace has it, else the model file's size."""
    for event in trace.of("load"):
        counted = event.get("llamacpp", {}).get("model_bytes") if isinstance(event.get("llamacpp"), dict) else None
        if _positive_int(counted):
            return counted
    size = _positive_int(meta.get("model_size"))
    if size is None and isinstance(trace.header.get("model"), dict):
        size = _positive_int(trace.header["model"].get("size"))
    return size


def _with_runtime_kv_type(trace: Trace, kv: KVFacts) -> KVFacts:
    """llama.cpp reports the KV cache type of the context it made (``type_k``/``type_v``): the run's own truth."""
    for event in trace.of("load"):
        ctx = event.get("llamacpp")
        if isinstance(ctx, dict) and ctx.get("type_k") == ctx.get("type_v") and isinstance(ctx.get("type_k"), str):
            return KVFacts(kv.layers, kv.kv_heads, kv.head_dim, dtype=ctx["type_k"])
    return kv


def roofline(trace: Trace, meta: dict[str, Any], kv: KVFacts, decode_tps: float | None) -> dict[str, Any]:
    """The roofline columns of one run (``COLUMNS``); None where a number cannot be had."""
    from slmdeploy.devices import bandwidth_store

    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    probe = trace_bandwidth(trace)
    if probe is not None:
        row.update(bandwidth_gbps=probe["best_gbps"], bandwidth_source="trace", bandwidth_threads=probe.get("threads"))
    elif (stored := bandwidth_store.last(meta.get("device"))) is not None:
        row.update(bandwidth_gbps=stored["best_gbps"], bandwidth_source="device",
                   bandwidth_threads=stored.get("threads"))
    kv = _with_runtime_kv_type(trace, kv)
    decode = [e for e in trace.iterations() if e.get("phase") == "decode" and _positive_int(e.get("tokens"))]
    weights = weight_bytes(trace, meta)
    if not decode or weights is None:
        if decode:
            row["decode_bytes_basis"] = "unknown: no model size"
        return row
    first = decode[0]
    start = first.get("start_pos")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        prefill = [e for e in trace.iterations() if e.get("phase") == "prefill"]
        start = prefill[0].get("tokens") if prefill else None
    per_position = kv.bytes_per_position() if isinstance(start, int) else None
    total, kv_part = decode_bytes_per_token(weights, per_position, start or 0, first["tokens"])
    missing = kv.missing() or ([] if isinstance(start, int) else ["decode start position"])
    row.update(
        decode_weight_bytes=weights,
        decode_kv_bytes_per_token=kv_part,
        decode_bytes_per_token=total,
        decode_bytes_basis=BASIS_FULL if kv_part is not None else "weights-only: no " + ", ".join(missing),
        decode_achieved_gbps=total * decode_tps / 1e9 if decode_tps else None,
        decode_bandwidth_fraction=bandwidth_fraction(total, decode_tps, row["bandwidth_gbps"]),
    )
    return row
