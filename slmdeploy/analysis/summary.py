"""Rows: runs of the same thing on the same device, summarised together.

A row is every run with the same identity (``rows.row_key``, the one definition the CI gate
matches by too: model, target, device, workload without how-it-was-measured keys, threads).
Its statistics pool the per-measured-run values (``rows.pooled_rows``) of all its valid runs:
three benches of five runs give a median, bootstrap 95% CI and CV over fifteen values.

The bootstrap distribution of the median is computed exactly (``median_ci``), vectorised
across rows with the same number of values: no resampling, so 10,000 runs summarise in a
fraction of a second and the same values always give the same interval.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from slmdeploy.analysis.median_ci import CONFIDENCE, median_intervals
from slmdeploy.analysis.rows import KEY_COLUMNS, pooled_rows
from slmdeploy.analysis.samples import METRICS
from slmdeploy.analysis.validity import REASON_SEPARATOR

MAX_REASONS = 5  # distinct reasons listed per row; the rest are counted


def _key_value(value: Any) -> Any:
    """A row's identity value as shown (NaN/None -> None; floats that are integers -> int, as threads)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, (str, int, bool)) else str(value)


def bootstrap(groups: list[np.ndarray], *, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """``median_ci.median_intervals`` as a frame: columns median, ci_lo, ci_hi, cv, n, a row per group."""
    return pd.DataFrame(median_intervals(groups, confidence=confidence))


def _reasons(texts: Iterable[Any]) -> str:
    seen: dict[str, int] = {}
    for text in texts:
        if isinstance(text, str) and text:
            for reason in text.split(REASON_SEPARATOR):
                seen[reason] = seen.get(reason, 0) + 1
    shown = [f"{r} (x{c})" if c > 1 else r for r, c in list(seen.items())[:MAX_REASONS]]
    more = len(seen) - MAX_REASONS
    return REASON_SEPARATOR.join(shown + ([f"{more} more"] if more > 0 else []))


def summarize_rows(frame: pd.DataFrame, include_invalid: bool = False,
                   metrics: Iterable[str] | None = None, extra_columns: Iterable[str] = ()) -> pd.DataFrame:
    """One row per identity (``rows.row_key``) with per-metric statistics over the pooled per-run samples.

    ``frame`` is ``load_runs``' output (it needs ``samples``; ``valid`` and ``invalid_reasons``
    when present). Only valid runs contribute unless ``include_invalid``; a row whose runs are
    all invalid is kept with no numbers, so it is seen, not lost.

    Columns: ``rows.KEY_COLUMNS`` (those ``frame`` has) as the row's first run has them,
    ``runs`` (runs in the row), ``valid_runs``, ``invalid_runs``, ``used_runs`` (runs whose
    samples were pooled), ``valid`` (some run was pooled and, with ``include_invalid``, all
    pooled runs are valid), ``invalid_reasons`` (the distinct reasons of the row's invalid runs,
    '; '-joined, with counts), ``run_ids`` (list), and for each metric ``m`` (default: every one
    in ``samples.METRICS``) ``m_median``, ``m_ci_lo``, ``m_ci_hi`` (95% percentile bootstrap),
    ``m_cv`` and ``m_n`` (pooled values). Rows come in the order of their first run in ``frame``.
    ``extra_columns`` (those ``frame`` has) are copied from each row's first run after the identity
    (the HTML report's model size and harness).
    """
    names = list(metrics) if metrics is not None else list(METRICS)
    keys = [k for k in (*KEY_COLUMNS, *extra_columns) if k in frame.columns]
    stat_columns = [f"{m}_{s}" for m in names for s in ("median", "ci_lo", "ci_hi", "cv", "n")]
    base_columns = [*keys, "runs", "valid_runs", "invalid_runs", "used_runs", "valid", "invalid_reasons", "run_ids"]
    if frame.empty:
        return pd.DataFrame(columns=base_columns + stat_columns)
    valid = (frame["valid"].fillna(False).astype(bool).tolist() if "valid" in frame.columns
             else [True] * len(frame))
    reasons = frame["invalid_reasons"].tolist() if "invalid_reasons" in frame.columns else [""] * len(frame)
    run_ids = frame["run_id"].tolist() if "run_id" in frame.columns else list(range(len(frame)))
    pooled = pooled_rows(frame, names, use=None if include_invalid else valid)
    out = []
    for p in pooled:
        n_valid = sum(valid[i] for i in p.members)
        bad = n_valid < len(p.members)
        out.append({"runs": len(p.members), "valid_runs": n_valid,
                    "invalid_runs": len(p.members) - n_valid, "used_runs": len(p.used),
                    "valid": bool(p.used) and all(valid[i] for i in p.used),
                    "invalid_reasons": _reasons(reasons[i] for i in p.members if not valid[i]) if bad else "",
                    "run_ids": [run_ids[i] for i in p.members]})
    firsts = [p.members[0] for p in pooled]
    identity = {k: [_key_value(v) for v in frame[k].iloc[firsts].tolist()] for k in keys}
    table = pd.concat([pd.DataFrame(identity), pd.DataFrame(out)], axis=1)[base_columns]
    stats = {}
    for m in names:
        est = bootstrap([p.values[m] for p in pooled])
        for s in ("median", "ci_lo", "ci_hi", "cv", "n"):
            stats[f"{m}_{s}"] = est[s].to_numpy()
    return pd.concat([table, pd.DataFrame(stats)], axis=1)
