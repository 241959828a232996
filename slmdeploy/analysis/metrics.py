"""From a trace to the numbers people compare: tok/s ± sd, TTFT, load time, peak memory."""

from __future__ import annotations

import statistics
from typing import Any

from slmdeploy.harness.trace import Trace

THROTTLE_FREQ_DROP = 0.85  # a core below 85% of its first sampled frequency ...
THROTTLE_TEMP_RISE_MC = 2000  # ... while some thermal zone rose by 2 °C or more


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def throttling(trace: Trace) -> dict[str, Any]:
    """Did the device slow down during the run? Compares telemetry samples with the first one.

    The direct evidence is a lowered cap: a thermal governor throttles by lowering a core's
    ``scaling_max_freq`` (``cpu_max_khz``). Traces without caps fall back to a heuristic: a
    core's current frequency well below its first sample while the device heated up.
    """
    samples = trace.of("telemetry")
    if len(samples) < 2:
        return {"throttled": None, "samples": len(samples)}
    first = samples[0]
    min_ratio, cap_ratio, max_rise = 1.0, 1.0, 0
    caps_seen = False
    for sample in samples[1:]:
        for cpu, khz in sample.get("cpu_khz", {}).items():
            base = first.get("cpu_khz", {}).get(cpu)
            if base:
                min_ratio = min(min_ratio, khz / base)
        for cpu, khz in sample.get("cpu_max_khz", {}).items():
            base = first.get("cpu_max_khz", {}).get(cpu)
            if base:
                caps_seen = True
                cap_ratio = min(cap_ratio, khz / base)
        for zone, mc in sample.get("thermal_mc", {}).items():
            base = first.get("thermal_mc", {}).get(zone)
            if base is not None:
                max_rise = max(max_rise, mc - base)
    temps = [max(s["thermal_mc"].values()) for s in samples if s.get("thermal_mc")]
    heuristic = min_ratio < THROTTLE_FREQ_DROP and max_rise >= THROTTLE_TEMP_RISE_MC
    return {
        "throttled": cap_ratio < 1.0 if caps_seen else heuristic,
        "samples": len(samples),
        "min_freq_ratio": round(min_ratio, 3),
        "freq_cap_ratio": round(cap_ratio, 3) if caps_seen else None,
        "temp_rise_c": max_rise / 1000,
        "max_temp_c": max(temps) / 1000 if temps else None,
    }


def summarize(trace: Trace) -> dict[str, Any]:
    """One row of results. Missing phases give None, never a made-up number."""
    prefill = [e for e in trace.iterations() if e.get("phase") == "prefill"]
    decode = [e for e in trace.iterations() if e.get("phase") == "decode"]
    forward = [e for e in trace.iterations() if e.get("phase") == "forward"]
    prefill_tps = [e["tokens"] / (e["ns"] / 1e9) for e in prefill if e["ns"] > 0]
    decode_tps = [e["tokens"] / (e["ns"] / 1e9) for e in decode if e["ns"] > 0]
    steps = [ns for e in decode for ns in e.get("step_ns", [])]
    calls = [ns for e in forward for ns in e.get("step_ns", [])]
    pf_mean, pf_sd = _mean_sd(prefill_tps)
    dc_mean, dc_sd = _mean_sd(decode_tps)
    ttft = statistics.fmean(e["ns"] for e in prefill) / 1e6 if prefill else None
    load = trace.of("load")
    hwm = [e["hwm_kib"] for e in trace.events if isinstance(e.get("hwm_kib"), int)]
    pss = [e["pss_kib"] for e in trace.events if isinstance(e.get("pss_kib"), int)]
    header = trace.header
    return {
        "complete": trace.complete,
        "error": trace.error,
        "harness": header.get("harness", {}).get("name"),
        "runtime_version": header.get("runtime", {}).get("version"),
        "measured_runs": max(len(prefill), len(forward)),
        "measured_s": sum(e["ns"] for e in (*prefill, *decode, *forward)) / 1e9,
        "prefill_tokens": prefill[0]["tokens"] if prefill else None,
        "gen_tokens": decode[0]["tokens"] if decode else None,
        "prefill_tps": pf_mean,
        "prefill_tps_sd": pf_sd,
        "decode_tps": dc_mean,
        "decode_tps_sd": dc_sd,
        "decode_step_p50_ms": (_percentile(steps, 0.5) or 0) / 1e6 if steps else None,
        "decode_step_p90_ms": (_percentile(steps, 0.9) or 0) / 1e6 if steps else None,
        "decode_step_p99_ms": (_percentile(steps, 0.99) or 0) / 1e6 if steps else None,
        "forward_ms": statistics.fmean(calls) / 1e6 if calls else None,
        "ttft_ms": ttft,
        "load_ms": load[0]["ns"] / 1e6 if load else None,
        "threads": load[0].get("threads") if load else None,
        "peak_rss_mib": max(hwm) / 1024 if hwm else None,
        "peak_pss_mib": max(pss) / 1024 if pss else None,
        **{f"thermal_{k}": v for k, v in throttling(trace).items()},
    }
