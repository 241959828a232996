"""Synthetic but protocol-true traces and run directories (run.json + trace.jsonl), fast to make in any number.

For tests and benchmarks of the analysis (tests/analysis, benchmarks/report_scale.py): what a
harness writes (docs/harness-protocol.md), with deterministic spread, no device needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROTOCOL = "slmdeploy.trace/1"


def trace_events(*, runs: int = 5, warmup: int = 1, prompt: int = 16, gen: int = 8, prefill_ns: int = 40_000_000,
                 step_ns: int = 30_000_000, jitter: float = 0.02, telemetry: list[dict] | None = None,
                 footer: bool = True) -> list[dict[str, Any]]:
    """A complete LLM trace: header, load, ``warmup + runs`` x (prefill, decode), footer."""
    events: list[dict[str, Any]] = [
        {"type": "header", "t_ns": 0, "protocol": PROTOCOL, "harness": {"name": "python", "version": "0"},
         "runtime": {"name": "executorch", "version": "1.0"}},
    ]
    for sample in telemetry or []:
        events.append({"type": "telemetry", "t_ns": 1, **sample})
    events.append({"type": "load", "t_ns": 2, "ns": 20_000_000, "threads": 2, "rss_kib": 100_000, "hwm_kib": 100_000})
    for index in range(warmup + runs):
        warm = index < warmup
        run = index if warm else index - warmup
        f = 1 + jitter * ((index * 7) % 5 - 2)  # deterministic spread
        steps = [int(step_ns * f)] * gen
        events.append({"type": "iteration", "t_ns": 10 + index, "run": run, "warmup": warm, "phase": "prefill",
                       "tokens": prompt, "start_pos": 0, "ns": int(prefill_ns * f), "rss_kib": 120_000,
                       "hwm_kib": 120_000 + index})
        if gen:
            events.append({"type": "iteration", "t_ns": 11 + index, "run": run, "warmup": warm, "phase": "decode",
                           "tokens": gen, "start_pos": prompt, "ns": sum(steps), "step_ns": steps,
                           "rss_kib": 121_000, "hwm_kib": 121_000 + index})
    if footer:
        events.append({"type": "footer", "t_ns": 1000, "status": "complete", "runs": runs})
    return events


def write_run(parent: Path, name: str, events: list[dict[str, Any]] | None = None, *, lines: list[str] | None = None,
              meta: dict[str, Any] | None = None, started_at: str = "2026-12-01T10:00:00",
              **trace_kwargs: Any) -> Path:
    """A run directory ``parent/name``; ``lines`` (raw trace lines) wins over ``events``."""
    run_dir = parent / name
    run_dir.mkdir(parents=True, exist_ok=True)
    base = {"run_id": name, "status": "complete", "started_at": started_at, "model": "llama-tiny",
            "runtime": "executorch", "quant": "fp32", "delegates": ["xnnpack"], "target": "host-xnnpack",
            "device": "local", "device_model": "host", "workload": {"prompt_tokens": 16, "gen_tokens": 8}}
    (run_dir / "run.json").write_text(json.dumps({**base, **(meta or {})}))
    if lines is None:
        lines = [json.dumps(e) for e in (events if events is not None else trace_events(**trace_kwargs))]
    (run_dir / "trace.jsonl").write_text("".join(line + "\n" for line in lines))
    return run_dir

