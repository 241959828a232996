"""Run directories with chosen per-run values, written in the real formats (run.json + a
``slmdeploy.trace/1`` trace through ``TraceWriter``), so the gate is tested through ``load_runs``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from slmdeploy.harness.trace import TraceWriter

PROMPT, GEN = 16, 64  # 64 tokens at ~100 tok/s: a few runs already measure over 1 s (validity.min_measured_s)


def noisy(center: float, rel_sd: float, n: int, seed: int) -> list[float]:
    """``n`` positive values around ``center`` with a relative spread ``rel_sd`` (fixed seed)."""
    rng = np.random.default_rng(seed)
    return [float(v) for v in np.abs(rng.normal(center, center * rel_sd, n))]


def write_run(root: Path, name: str, decode_tps: Sequence[float], prefill_tps: Sequence[float] | None = None,
              rss_mib: float = 400.0, *, model: str = "llama-tiny", target: str = "host-xnnpack",
              device: str = "local", device_model: str = "AMD EPYC", prompt: int = PROMPT, threads: int = 2,
              runs_in_workload: int | None = None, status: str = "complete", **extra: Any) -> Path:
    """One run directory: a measured run per value of ``decode_tps`` (prefill defaults to 6x decode)."""
    prefill_tps = list(prefill_tps) if prefill_tps is not None else [6 * v for v in decode_tps]
    run_dir = root / name
    run_dir.mkdir(parents=True)
    writer = TraceWriter(run_dir / "trace.jsonl")
    t = 1_000_000
    writer.write({"type": "header", "t_ns": t, "protocol": "slmdeploy.trace/1",
                  "harness": {"name": "python", "version": "0.1.0"}, "runtime": {"name": "executorch", "version": "x"},
                  "workload": {"kind": "llm", "prompt_tokens": prompt, "gen_tokens": GEN, "runs": len(decode_tps)}})
    writer.write({"type": "load", "t_ns": t, "ns": 50_000_000, "threads": threads, "hwm_kib": 300_000})
    hwm = int(rss_mib * 1024)
    for run, (dec, pre) in enumerate(zip(decode_tps, prefill_tps)):
        pre_ns = int(prompt / pre * 1e9)
        dec_ns = int(GEN / dec * 1e9)
        writer.write({"type": "iteration", "t_ns": t, "run": run, "warmup": False, "phase": "prefill",
                      "tokens": prompt, "ns": pre_ns, "hwm_kib": hwm, "rss_kib": hwm})
        writer.write({"type": "iteration", "t_ns": t, "run": run, "warmup": False, "phase": "decode", "tokens": GEN,
                      "ns": dec_ns, "step_ns": [dec_ns // GEN] * GEN, "hwm_kib": hwm, "rss_kib": hwm})
    if status == "complete":
        writer.write({"type": "footer", "t_ns": t, "status": "complete", "runs": len(decode_tps)})
    writer.close()
    meta = {"run_id": name, "status": status, "started_at": f"2026-01-01T00:00:{len(list(root.iterdir())):02d}+00:00",
            "model": model, "runtime": "executorch", "delegates": ["xnnpack"], "quant": "fp32", "target": target,
            "device": device, "device_model": device_model, "harness": "python",
            "workload": {"prompt_tokens": prompt, "gen_tokens": GEN, "warmup": 1,
                         "runs": runs_in_workload or len(decode_tps), "threads": 0, "seed": 0, "iterations": 10,
                         "telemetry_interval_ms": 500, "inputs": []}, **extra}
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2))
    return run_dir
