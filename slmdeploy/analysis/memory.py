"""A run's peak memory split into weights, KV cache and the rest, so vocabulary and attention show.

    peak      = the trace's largest ``hwm_kib`` (VmHWM: the process's peak resident set)
    weights   = the model's weight bytes: llama.cpp's own count, else the model file's size
    kv        = 2 x layers x kv_heads x head_dim x bytes per element x cache positions
    other     = peak - weights - kv: activations, compute buffers, the runtime and (Python
                harness) the interpreter; ``mem_before_load_mib`` says how much of it the
                process held before the model was loaded
    work      = peak - before load - weights - kv: what loading and running the model added beyond
                its weights and cache (activations, compute buffers, repacked weight copies); None
                without ``rss_before_kib`` in the load event, or where it would be negative

Cache positions: every exporter here allocates a static cache of the artifact's ``max_seq_len``
(ExecuTorch program buffers, Core ML state, llama.cpp's context of ``n_ctx = max_seq_len``), so
the KV part is the whole cache, not the positions the workload used. Where the manifest has no
``max_seq_len`` the positions the workload reached are used and ``mem_basis`` says so.

Nothing is guessed: a missing fact gives None and ``mem_basis`` names it. ``other`` is None when
weights + KV exceed the peak (a mapped model file that never became fully resident). docs/survey.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmdeploy.analysis.roofline import KVFacts, _with_runtime_kv_type, weight_bytes
from slmdeploy.harness.trace import Trace

MIB = 1 << 20
COLUMNS = ("mem_peak_mib", "mem_before_load_mib", "mem_after_load_mib", "mem_weights_mib", "mem_kv_mib",
           "mem_kv_positions", "mem_other_mib", "mem_work_mib", "mem_basis")


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest.json bench copies into the run directory ({} when absent or unreadable)."""
    try:
        data = json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def cache_positions(trace: Trace, manifest: dict[str, Any]) -> tuple[int | None, str]:
    """(positions the cache holds, how that is known): llama.cpp's context size where the trace states it,
    else the static cache's max_seq_len, else the positions used."""
    for event in trace.of("load"):
        ctx = event.get("llamacpp")
        if isinstance(ctx, dict) and _int(ctx.get("n_ctx")):
            return ctx["n_ctx"], f"kv: llama.cpp context n_ctx {ctx['n_ctx']} (trace)"
    llm = manifest.get("llm") if isinstance(manifest.get("llm"), dict) else {}
    size = _int(llm.get("max_seq_len"))
    if size:
        who = "llama.cpp context n_ctx" if llm.get("kv_cache") == "runtime" else "static cache"
        return size, f"kv: {who} of max_seq_len {size}"
    used = 0
    for event in trace.iterations(include_warmup=True):
        start, tokens = _int(event.get("start_pos")), _int(event.get("tokens"))
        if tokens is not None and event.get("phase") in ("prefill", "decode"):
            used = max(used, (start or 0) + tokens)
    if used:
        return used, f"kv: {used} positions used (no max_seq_len in manifest: cache size unknown)"
    return None, "kv: no cache size and no positions in the trace"


def memory_split(trace: Trace, meta: dict[str, Any], kv: KVFacts, manifest: dict[str, Any]) -> dict[str, Any]:
    """The memory columns of one run (``COLUMNS``), in MiB; None where a part cannot be had."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    hwm = [e["hwm_kib"] for e in trace.events if _int(e.get("hwm_kib"))]
    load = trace.of("load")
    if load:
        before, after = _int(load[0].get("rss_before_kib")), _int(load[0].get("rss_kib"))
        row["mem_before_load_mib"] = before / 1024 if before else None
        row["mem_after_load_mib"] = after / 1024 if after else None
    notes = []
    weights = weight_bytes(trace, meta)
    if weights is not None:
        row["mem_weights_mib"] = weights / MIB
        notes.append("weights: llama.cpp count" if any(isinstance(e.get("llamacpp"), dict) for e in load)
                     else "weights: model file")
    else:
        notes.append("weights: unknown (no model size)")
    per_position = _with_runtime_kv_type(trace, kv).bytes_per_position()  # llama.cpp: the cache type it made
    positions, how = cache_positions(trace, manifest)
    if per_position is not None and positions is not None:
        row["mem_kv_mib"], row["mem_kv_positions"] = per_position * positions / MIB, positions
        notes.append(how)
    else:
        notes.append("kv: unknown (" + ", ".join(kv.missing() or [how.removeprefix("kv: ")]) + ")")
    if not hwm:
        notes.append("other: no peak RSS in the trace")
    else:
        row["mem_peak_mib"] = max(hwm) / 1024
        if row["mem_weights_mib"] is None or row["mem_kv_mib"] is None:
            notes.append("other: unknown (weights or kv unknown)")
        else:
            other = row["mem_peak_mib"] - row["mem_weights_mib"] - row["mem_kv_mib"]
            if other >= 0:
                row["mem_other_mib"] = other
                notes.append("other: peak - weights - kv")
                before = row["mem_before_load_mib"]
                if before is not None and other - before >= 0:
                    row["mem_work_mib"] = other - before
            else:
                notes.append(f"other: unknown (weights + kv exceed peak RSS by {-other:.1f} MiB: "
                             "weights mapped, not all resident)")
    row["mem_basis"] = "; ".join(notes)
    return row
