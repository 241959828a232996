"""Realistic made-up run directories, for report benchmarks, tests and demos without a phone.

Each run is what ``bench`` leaves: ``run.json`` and a protocol-v1 ``trace.jsonl`` (header,
load, warm-up and measured prefill/decode iterations with ``step_ns``, telemetry with per-core
frequency caps and thermal zones, footer). Devices differ in speed; bigger models and wider
quantizations are slower; a device that heats past its trip point lowers its big cores' cap
and its decode steps slow down with it -- what a throttled phone looks like in a timeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slmdeploy.analysis.synthetic import write_run

DEVICES = [("Pixel 8", "adb:p8", 1.0), ("Galaxy S23", "adb:s23", 1.25), ("Raspberry Pi 5", "ssh:pi5", 0.35),
           ("Jetson Orin Nano", "ssh:orin", 0.6)]
MODELS = [("smollm2-135m", 135e6), ("qwen2.5-0.5b", 494e6), ("llama3.2-1b", 1.24e9), ("gemma3-1b", 1.0e9)]
QUANTS = [("fp32", 4.0), ("8da4w", 0.62), ("q4_0", 0.56)]
CORES = 8
BIG = range(4, 8)
TELEMETRY_NS = 500_000_000  # the harness samples sysfs every --telemetry-interval-ms


def _heat(temp_mc: int, busy_ns: int) -> int:
    """Busy time warms the SoC towards ~52 °C (slowly: a second adds about 0.1 °C at first)."""
    return int(temp_mc + (52_000 - temp_mc) * min(1.0, busy_ns / 1e9 / 150))


def _trace(rng: np.random.Generator, speed: float, params: float, bytes_per_param: float, prompt: int, gen: int,
           warmup: int, runs: int) -> list[dict[str, Any]]:
    step_ms = 0.5 + params * bytes_per_param / (20e6 * speed)  # memory bound: weight bytes / ~20 GB/s
    prefill_ms_per_tok = step_ms / 6
    rss_kib = int(params * bytes_per_param / 1024 * 1.1) + 60_000
    t = 5_000_000
    temp = 34_000 + int(rng.integers(0, 3000))
    cap = {f"cpu{c}": (2_000_000 if c < 4 else 2_900_000) for c in range(CORES)}
    events: list[dict[str, Any]] = [{"type": "header", "t_ns": t, "protocol": "slmdeploy.trace/1",
                                     "harness": {"name": "native", "version": "0.1.0"},
                                     "runtime": {"name": "executorch", "version": "1.5.1"}}]
    next_tele = t

    def telemetry(now: int) -> None:
        nonlocal next_tele
        while next_tele <= now:
            throttled = temp > 44_000
            for c in BIG:
                cap[f"cpu{c}"] = 1_800_000 if throttled else 2_900_000
            cur = {k: int(v * (0.85 + 0.15 * rng.random())) for k, v in cap.items()}
            events.append({"type": "telemetry", "t_ns": next_tele, "cpu_khz": cur, "cpu_max_khz": dict(cap),
                           "thermal_mc": {"cpu-big": temp, "cpu-little": temp - 3000, "battery": 30_000}})
            next_tele += TELEMETRY_NS

    load_ns = int(params * bytes_per_param / 2.0 + rng.normal(0, 2e6))
    t += max(load_ns, 1_000_000)
    telemetry(t)
    events.append({"type": "load", "t_ns": t, "ns": max(load_ns, 1_000_000), "threads": 4, "rss_kib": rss_kib,
                   "hwm_kib": rss_kib})
    for index in range(warmup + runs):
        warm = index < warmup
        run = index if warm else index - warmup
        slow = 1.0 + (0.55 if temp > 44_000 else 0.0)
        prefill = int(prompt * prefill_ms_per_tok * 1e6 * slow * rng.lognormal(0, 0.05))
        t += prefill + 40_000
        temp = _heat(temp, prefill)
        telemetry(t)
        events.append({"type": "iteration", "t_ns": t, "run": run, "warmup": warm, "phase": "prefill",
                       "tokens": prompt, "start_pos": 0, "ns": prefill, "rss_kib": rss_kib + 2048,
                       "hwm_kib": rss_kib + 4096})
        steps = []
        for i in range(gen):
            slow = 1.0 + (0.55 if temp > 44_000 else 0.0)
            step = int(step_ms * 1e6 * slow * (1 + i / (4 * gen)) * rng.lognormal(0, 0.06))
            steps.append(step)
            temp = _heat(temp, step)
            t += step + 3000
            telemetry(t)
        t += 30_000
        events.append({"type": "iteration", "t_ns": t, "run": run, "warmup": warm, "phase": "decode",
                       "tokens": gen, "start_pos": prompt, "ns": sum(steps), "step_ns": steps,
                       "rss_kib": rss_kib + 2048 + gen * 16, "hwm_kib": rss_kib + 4096 + gen * 16})
    events.append({"type": "footer", "t_ns": t + 1_000_000, "status": "complete", "runs": runs})
    return events


def write_runs(root: str | Path, n: int, *, seed: int = 0, prompt: int = 64, gen: int = 32, warmup: int = 1,
               runs: int = 5) -> list[Path]:
    """``n`` run directories under ``root`` cycling through devices x models x quantizations."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    combos = [(d, m, q) for d in DEVICES for m in MODELS for q in QUANTS]
    for i in range(n):
        (dev_model, spec, speed), (model, params), (quant, bpp) = combos[i % len(combos)]
        run_id = f"20260101-{i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}-{model}-{quant}-{i:05d}"
        workload = {"prompt_tokens": prompt, "gen_tokens": gen, "warmup": warmup, "runs": runs, "threads": 4}
        meta = {"run_id": run_id, "status": "complete", "started_at": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
                "model": model, "params": int(params), "model_size": int(params * bpp), "runtime": "executorch",
                "delegates": ["xnnpack"], "quant": quant, "target": f"android-arm64-{quant}", "device": spec,
                "device_model": dev_model, "harness": "native", "workload": workload}
        events = _trace(rng, speed, params, bpp, prompt, gen, warmup, runs)
        out.append(write_run(root, run_id, events, meta=meta))
    return out
