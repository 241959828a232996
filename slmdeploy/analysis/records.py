"""A run directory as one flat record: who ran what where (run.json) + the trace's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmdeploy.analysis.metrics import summarize
from slmdeploy.analysis.roofline import COLUMNS as ROOFLINE_COLUMNS, roofline, run_kv_facts
from slmdeploy.analysis.samples import run_samples
from slmdeploy.analysis.stats import estimate
from slmdeploy.harness.trace import read_trace

RUN_FILE = "run.json"
TRACE_FILE = "trace.jsonl"


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def record(run_dir: Path) -> dict[str, Any]:
    """run.json's identity fields + metrics recomputed from the trace (so analysis fixes apply to old runs)."""
    meta = json.loads((run_dir / RUN_FILE).read_text())
    trace_path = run_dir / TRACE_FILE
    trace = read_trace(trace_path) if trace_path.is_file() else None
    metrics = summarize(trace) if trace is not None else {"complete": False}
    samples = run_samples(trace) if trace is not None else {}
    row = {k: v for k, v in meta.items() if not isinstance(v, (dict, list))}
    row["workload"] = json.dumps(meta.get("workload", {}), sort_keys=True)
    row["delegates"] = "+".join(meta.get("delegates", []))
    row.update(metrics)
    # bytes per decode token and the share of the measured memory bandwidth it reaches (docs/roofline.md)
    row.update(roofline(trace, meta, run_kv_facts(run_dir, meta), metrics.get("decode_tps"))
               if trace is not None else dict.fromkeys(ROOFLINE_COLUMNS))
    for name, values in samples.items():  # median, bootstrap CI and CV over the measured runs
        row.update(estimate(values).as_dict(name))
    row["samples"] = json.dumps(samples, separators=(",", ":"))
    row["status"] = meta.get("status") if not metrics.get("complete") else "complete"
    row["run_dir"] = str(run_dir.resolve())
    return row


def iteration_rows(run_dir: Path, run_id: str) -> list[dict[str, Any]]:
    trace_path = run_dir / TRACE_FILE
    if not trace_path.is_file():
        return []
    rows = []
    for event in read_trace(trace_path).iterations(include_warmup=True):
        rows.append(
            {
                "run_id": run_id,
                "run": event.get("run"),
                "warmup": bool(event.get("warmup")),
                "phase": event.get("phase"),
                "tokens": event.get("tokens"),
                "ns": event.get("ns"),
                "rss_kib": event.get("rss_kib"),
                "hwm_kib": event.get("hwm_kib"),
            }
        )
    return rows
