"""Per-measured-run values: the samples that statistics, comparisons and the gate are made of.

A bench repeats its workload (``--runs``, after warmups); each measured repetition gives one
value per metric. Means hide a slow outlier and need normality; the analysis works on these
per-run values instead (``stats.estimate``: median, bootstrap CI, CV).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from slmdeploy.harness.trace import Trace


@dataclass(frozen=True)
class Metric:
    """A compared quantity: its column name, label, unit and which direction is better."""

    name: str
    label: str
    unit: str
    higher_is_better: bool


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("prefill_tps", "prefill", "tok/s", True),
    Metric("decode_tps", "decode", "tok/s", True),
    Metric("ttft_ms", "TTFT", "ms", False),
    Metric("decode_step_ms", "decode step (median)", "ms", False),
    Metric("forward_ms", "forward", "ms", False),
    Metric("peak_rss_mib", "peak RSS", "MiB", False),
)}


def _per_run(trace: Trace) -> dict[Any, list[dict[str, Any]]]:
    runs: dict[Any, list[dict[str, Any]]] = {}
    for i, event in enumerate(trace.iterations()):
        runs.setdefault(event.get("run", i), []).append(event)
    return runs


def run_samples(trace: Trace) -> dict[str, list[float]]:
    """metric -> one value per measured run (warmups excluded); a metric the trace lacks is absent."""
    out: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            out.setdefault(name, []).append(float(value))

    for events in _per_run(trace).values():
        by_phase = {e.get("phase"): e for e in events}
        prefill, decode, forward = by_phase.get("prefill"), by_phase.get("decode"), by_phase.get("forward")
        if prefill and prefill.get("ns", 0) > 0:
            add("prefill_tps", prefill["tokens"] / (prefill["ns"] / 1e9))
            add("ttft_ms", prefill["ns"] / 1e6)
        if decode and decode.get("ns", 0) > 0:
            add("decode_tps", decode["tokens"] / (decode["ns"] / 1e9))
            if decode.get("step_ns"):
                add("decode_step_ms", statistics.median(decode["step_ns"]) / 1e6)
        if forward and forward.get("step_ns"):
            add("forward_ms", statistics.fmean(forward["step_ns"]) / 1e6)
        hwm = [e["hwm_kib"] for e in events if isinstance(e.get("hwm_kib"), int)]
        if hwm:
            add("peak_rss_mib", max(hwm) / 1024)
    return out
