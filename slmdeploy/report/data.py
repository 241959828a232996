"""What the HTML report shows, as plain tables: configuration rows, and the runs worth a chart each.

``summary_rows`` is the one place rows are made; the validity work (``summarize_rows``)
replaces it when it lands: same input (``load_runs``'s frame), one row per configuration.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from slmdeploy.analysis.stats import estimate

if TYPE_CHECKING:
    import pandas as pd

# A configuration: runs that differ in none of these are repetitions of one measurement.
IDENTITY = ["model", "quant", "runtime", "delegates", "target", "device", "device_model", "threads", "workload"]
SUMMARY_METRICS = ["prefill_tps", "decode_tps", "ttft_ms", "decode_step_ms", "forward_ms", "peak_rss_mib"]


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _samples(value: Any) -> dict[str, list[float]]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def summary_rows(frame: "pd.DataFrame") -> "pd.DataFrame":
    """One row per configuration (``IDENTITY``): median and bootstrap 95% CI of each metric over
    the pooled per-run samples of its runs; ``valid``/``invalid_reasons`` when the runs carry them
    (a row is valid when all its runs are)."""
    import pandas as pd

    if frame.empty:
        return pd.DataFrame()
    keys = [k for k in IDENTITY if k in frame.columns]
    key_frame = frame[keys].astype(str)
    out = []
    for _, index in key_frame.groupby(keys, sort=False, dropna=False).groups.items():
        runs = frame.loc[index]
        first = runs.iloc[0]
        row: dict[str, Any] = {k: first.get(k) for k in keys}
        row["runs"] = len(runs)
        row["run_ids"] = list(runs["run_id"]) if "run_id" in runs else []
        for extra in ("model_size", "params", "harness"):
            row[extra] = first.get(extra) if extra in runs else None
        pooled: dict[str, list[float]] = {}
        for value in runs["samples"] if "samples" in runs else []:
            for name, values in _samples(value).items():
                pooled.setdefault(name, []).extend(values)
        for name in SUMMARY_METRICS:
            row.update(estimate(pooled.get(name, [])).as_dict(name))
        if "valid" in runs:
            flags = [v for v in runs["valid"] if v is not None and not (isinstance(v, float) and math.isnan(v))]
            row["valid"] = all(bool(v) for v in flags) if flags else None
            reasons = set()
            for value in runs.get("invalid_reasons", []):
                if isinstance(value, str) and value:
                    reasons.update(r.strip() for r in value.replace(";", ",").split(",") if r.strip())
                elif isinstance(value, (list, tuple)):
                    reasons.update(map(str, value))
            row["invalid_reasons"] = ", ".join(sorted(reasons))
        out.append(row)
    rows = pd.DataFrame(out)
    rows["label"] = row_labels(rows)
    return rows


def row_labels(rows: "pd.DataFrame", *, without: tuple[str, ...] = ()) -> list[str]:
    """A short name per row: only the identity fields that differ between rows (and not in ``without``);
    the target and delegates only when the rest leaves two rows with one name."""
    labels = _labels(rows, ("model", "quant", "runtime", "device", "threads", "workload"), without)
    context = rows[[w for w in without if w in rows.columns]].astype(str).agg("|".join, axis=1) if without else None
    keys = [f"{label}|{c}" for label, c in zip(labels, context)] if context is not None else labels
    if len(set(keys)) < len(keys):
        labels = _labels(rows, ("model", "quant", "runtime", "delegates", "target", "device", "threads", "workload"),
                         without)
    return labels


def _labels(rows: "pd.DataFrame", fields: tuple[str, ...], without: tuple[str, ...]) -> list[str]:
    shown = [k for k in fields if k in rows.columns and k not in without and rows[k].astype(str).nunique() > 1]
    labels = []
    for r in rows.to_dict("records"):
        parts = []
        for k in shown:
            value = r.get(k)
            if k == "threads":
                parts.append(f"{int(value)}t" if _num(value) else "threads ?")
            elif k == "workload":
                parts.append(workload_label(value))
            else:
                parts.append(str(value))
        labels.append(" ".join(parts) or str(r.get("model") or "run"))
    return labels


def workload_label(value: Any) -> str:
    """``pp16+tg8`` for an LLM workload, ``forward x10`` for a generic one."""
    w = _samples(value) if not isinstance(value, dict) else value
    if not w:
        return "-"
    if w.get("gen_tokens") or w.get("prompt_tokens"):
        return f"pp{w.get('prompt_tokens', 0)}+tg{w.get('gen_tokens', 0)}"
    return f"forward x{w.get('iterations', '?')}"


def pick_runs(frame: "pd.DataFrame", limit: int) -> tuple["pd.DataFrame", str | None]:
    """The runs that get a chart each: all of them up to ``limit``, else the ``limit`` slowest
    (highest median decode step, else TTFT or forward time), with a sentence saying so."""
    if frame.empty or "run_dir" not in frame:
        return frame.iloc[0:0], None
    with_dir = frame[frame["run_dir"].notna()]
    if len(with_dir) <= limit:
        return with_dir, None
    for metric in ("decode_step_ms_median", "ttft_ms_median", "forward_ms_median"):
        if metric in with_dir and with_dir[metric].notna().any():
            worst = with_dir.sort_values(metric, ascending=False, na_position="last", kind="stable").head(limit)
            what = {"decode_step_ms_median": "highest median decode step", "ttft_ms_median": "highest median TTFT",
                    "forward_ms_median": "highest median forward time"}[metric]
            return worst, (f"Per-run charts show the {limit} slowest of {len(with_dir)} runs ({what}); "
                           "the summary and comparison charts cover every run.")
    return with_dir.head(limit), (f"Per-run charts show the first {limit} of {len(with_dir)} runs; "
                                  "the summary and comparison charts cover every run.")
