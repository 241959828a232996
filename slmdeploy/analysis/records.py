"""A run directory as one flat record: who ran what where (run.json) + the trace's metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmdeploy.analysis.architecture import architecture_columns
from slmdeploy.analysis.memory import COLUMNS as MEMORY_COLUMNS, memory_split, read_manifest
from slmdeploy.analysis.metrics import summarize
from slmdeploy.analysis.roofline import COLUMNS as ROOFLINE_COLUMNS, roofline, run_kv_facts
from slmdeploy.analysis.samples import run_samples
from slmdeploy.analysis.stats import estimate
from slmdeploy.analysis.validate import check_trace
from slmdeploy.analysis.validity import cooldown_fields, verdict

RUN_FILE = "run.json"
TRACE_FILE = "trace.jsonl"


def is_run_dir(path: Path) -> bool:
    return (path / RUN_FILE).is_file()


def read_meta(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """run.json as a dict, and what was wrong with it (None when fine): a bad file is a flagged run, not a crash."""
    path = run_dir / RUN_FILE
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        return {}, f"{RUN_FILE}:{err.lineno}: not JSON ({err.msg})"
    except (OSError, UnicodeDecodeError) as err:
        return {}, f"{RUN_FILE}: unreadable ({type(err).__name__})"
    if not isinstance(meta, dict):
        return {}, f"{RUN_FILE}:1: not a JSON object ({type(meta).__name__})"
    return meta, _meta_problem(meta)


TEXT_FIELDS = ("run_id", "status", "started_at", "model", "runtime", "quant", "target", "device", "device_model")


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """The first run.json field of the wrong type among those identity and validity read (None: all fine)."""
    for name in TEXT_FIELDS:
        if meta.get(name) is not None and not isinstance(meta[name], str):
            return f"{RUN_FILE}: {name} is not a string ({json.dumps(meta[name])[:40]})"
    strays = meta.get("strays_killed")
    if strays is not None and not (isinstance(strays, int) and not isinstance(strays, bool) and strays >= 0):
        return f"{RUN_FILE}: strays_killed is not a non-negative integer ({json.dumps(strays)[:40]})"
    cooldown = meta.get("cooldown")
    if cooldown is not None and not (isinstance(cooldown, list) and all(isinstance(c, dict) for c in cooldown)):
        return f"{RUN_FILE}: cooldown is not a list of objects ({json.dumps(cooldown)[:40]})"
    return None


def _delegates(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(d) for d in value)
    return str(value) if value else ""


def record(run_dir: Path) -> dict[str, Any]:
    """run.json's identity fields + metrics recomputed from the trace (so analysis fixes apply to old runs).

    The trace is read through ``validate.check_trace``: impossible values never reach a number,
    and the record carries the verdict (``valid``, ``invalid_reasons``; see ``validity``).
    """
    meta, meta_problem = read_meta(run_dir)
    trace_path = run_dir / TRACE_FILE
    checked, unreadable = None, f"no {TRACE_FILE}"
    if trace_path.is_file():
        try:
            checked = check_trace(trace_path)
        except OSError as err:
            unreadable = f"{TRACE_FILE}: unreadable ({type(err).__name__})"
    trace = checked.trace if checked is not None else None
    metrics = summarize(trace) if trace is not None else {"complete": False}
    samples = run_samples(trace) if trace is not None else {}
    row = {k: v for k, v in meta.items() if not isinstance(v, (dict, list))}
    for name in TEXT_FIELDS:  # a wrong-typed identity field is flagged above and never used as one
        if name in row and row[name] is not None and not isinstance(row[name], str):
            del row[name]
    row["run_id"] = row.get("run_id") if isinstance(row.get("run_id"), str) else run_dir.name
    row["workload"] = json.dumps(meta.get("workload", {}), sort_keys=True, default=str)
    row["delegates"] = _delegates(meta.get("delegates", []))
    row.update(cooldown_fields(meta.get("cooldown")))
    row.update(metrics)
    # bytes per decode token and the share of the measured memory bandwidth it reaches (docs/roofline.md)
    row.update(roofline(trace, meta, run_kv_facts(run_dir, meta), metrics.get("decode_tps"))
               if trace is not None else dict.fromkeys(ROOFLINE_COLUMNS))
    # peak memory split into weights, KV cache and the rest; the architecture facts figures group by
    manifest = read_manifest(run_dir)
    row.update(memory_split(trace, meta, run_kv_facts(run_dir, meta), manifest)
               if trace is not None else dict.fromkeys(MEMORY_COLUMNS))
    row.update(architecture_columns(manifest))
    for name, values in samples.items():  # median, bootstrap CI and CV over the measured runs
        row.update(estimate(values).as_dict(name))
    row["samples"] = json.dumps(samples, separators=(",", ":"))
    row["status"] = meta.get("status") if not metrics.get("complete") else "complete"
    row["run_dir"] = str(run_dir.resolve())
    row["run_json_problem"] = meta_problem
    row["trace_problem"] = checked.reason() if checked is not None else unreadable
    row["trace_skipped_lines"] = checked.skipped_lines if checked is not None else 0
    result = verdict(row)
    row["valid"], row["invalid_reasons"] = result.valid, result.text
    return row


def iteration_rows(run_dir: Path, run_id: str) -> list[dict[str, Any]]:
    trace_path = run_dir / TRACE_FILE
    if not trace_path.is_file():
        return []
    rows = []
    for event in check_trace(trace_path).trace.iterations(include_warmup=True):
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
