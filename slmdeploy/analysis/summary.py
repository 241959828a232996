"""Rows: runs of the same thing on the same device, summarised together.

A row is every run with the same identity (``rows.row_key``, the one definition the CI gate
matches by too: model, target, device, workload without how-it-was-measured keys, threads).
Its statistics pool the per-measured-run values (``rows.pooled_rows``) of all its valid runs:
three benches of five runs give a median, bootstrap 95% CI and CV over fifteen values.

The bootstrap distribution of the median is computed exactly (``bootstrap``), vectorised
across rows with the same number of values: no resampling, so 10,000 runs summarise in a
fraction of a second and the same values always give the same interval.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable

import numpy as np
import pandas as pd

from slmdeploy.analysis.rows import KEY_COLUMNS, pooled_rows
from slmdeploy.analysis.samples import METRICS
from slmdeploy.analysis.stats import CONFIDENCE
from slmdeploy.analysis.validity import REASON_SEPARATOR

MAX_REASONS = 5  # distinct reasons listed per row; the rest are counted


def _key_value(value: Any) -> Any:
    """A row's identity value as shown (NaN/None -> None; floats that are integers -> int, as threads)."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, (str, int, bool)) else str(value)


@functools.lru_cache(maxsize=4096)
def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])


def _at_least(n: int, k: int, p: float) -> float:
    """P(Binomial(n, p) >= k), summed in log space (exact for any n a study holds)."""
    if p >= 1.0:
        return 1.0
    i = np.arange(k, n + 1)
    lf = _log_factorials(n)
    log_pmf = lf[n] - lf[i] - lf[n - i] + i * np.log(p) + (n - i) * np.log1p(-p)
    top = log_pmf.max()
    return float(np.exp(top) * np.exp(log_pmf - top).sum())


@functools.lru_cache(maxsize=4096)
def _order_index(n: int, k: int, q: float) -> int:
    """The q-quantile of the k-th smallest value of a bootstrap resample, as an index into the sorted values.

    The k-th smallest of a resample is at most the j-th smallest value (0-based) exactly when at
    least k of the n draws fall on the j+1 smallest: P = P(Binomial(n, (j+1)/n) >= k), which
    grows with j; the quantile is the first j where it reaches q (a binary search).
    """
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _at_least(n, k, (mid + 1) / n) >= q:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _median_interval(n: int, confidence: float) -> tuple[list[int], list[int]]:
    """Indices into the sorted values whose mean is the interval's lower and upper end (two for an even n)."""
    alpha = (1 - confidence) / 2
    middle = [(n + 1) // 2] if n % 2 else [n // 2, n // 2 + 1]  # 1-based ranks of the median
    return [_order_index(n, k, alpha) for k in middle], [_order_index(n, k, 1 - alpha) for k in middle]


EXACT_EVEN_MAX = 200  # above this even count, the two middle ranks' quantiles are averaged (error < 1% of width)


@functools.lru_cache(maxsize=256)
def _middle_pairs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an even n: every (i, j), i <= j, and the probability that a resample's two middle values are
    the data's i-th and j-th smallest (0-based) -- the same for any data, so computed once per n.

    With k = n/2, the k-th smallest draw is at i and the (k+1)-th at j > i exactly when the first
    i+1 cells hold k draws with at least one at i, cells i+1..j-1 none, and cell j at least one of
    the other n-k: C(n, k) ((i+1)^k - i^k) / n^k * ((n-j)^(n-k) - (n-j-1)^(n-k)) / n^(n-k).
    Both at i takes the rest of P(k-th smallest at i).
    """
    k = n // 2
    cells = np.arange(n, dtype=float)
    first = np.exp(_log_factorials(n)[n] - _log_factorials(n)[k] - _log_factorials(n)[n - k]) * (
        ((cells + 1) / n) ** k - (cells / n) ** k)
    second = ((n - cells) / n) ** (n - k) - ((n - cells - 1) / n) ** (n - k)
    i, j = np.triu_indices(n, 1)
    p = first[i] * second[j]
    at_i = np.array([_at_least(n, k, (c + 1) / n) - _at_least(n, k, c / n) if c else _at_least(n, k, 1 / n)
                     for c in range(n)])  # P(k-th smallest draw at cell c)
    same = at_i - first * ((n - cells - 1) / n) ** (n - k)
    return (np.concatenate([i, np.arange(n)]), np.concatenate([j, np.arange(n)]),
            np.concatenate([p, np.clip(same, 0.0, None)]))


def _even_interval(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact bootstrap percentile interval of the median for rows of sorted ``values`` of even length."""
    i, j, p = _middle_pairs(values.shape[1])
    medians = (values[:, i] + values[:, j]) / 2  # (rows, pairs)
    order = np.argsort(medians, axis=1, kind="stable")
    cum = np.cumsum(p[order], axis=1)
    alpha = (1 - confidence) / 2
    rows = np.arange(len(values))
    ends = []
    for q in (alpha, 1 - alpha):
        at = np.minimum((cum < q - 1e-12).sum(axis=1), cum.shape[1] - 1)
        ends.append(medians[rows, order[rows, at]])
    return ends[0], ends[1]


def bootstrap(groups: list[np.ndarray], *, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Median, 95% percentile-bootstrap CI of the median and CV of each array in ``groups``, vectorised.

    The bootstrap distribution of a median is computed exactly rather than resampled: a
    resample's k-th smallest value is an order statistic of the data with binomial
    probabilities (``_order_index``), so the interval is the one infinitely many resamples
    would give, in O(n log n) per row and with no seed. An even count's median is the mean of
    two middle values: the joint distribution of their ranks is exact too (``_middle_pairs``)
    up to ``EXACT_EVEN_MAX`` values; above, each end is the mean of the two ranks' quantiles,
    which differs by under 1% of the interval's width there. It agrees with
    ``stats.estimate``'s 2,000 resamples up to their Monte Carlo noise; resampling 10,000 runs'
    pooled values would take minutes.

    Returns columns median, ci_lo, ci_hi, cv, n (one row per group; NaN where undefined: no
    values, or one value, which has no interval).
    """
    count = len(groups)
    median, lo, hi, cv = (np.full(count, np.nan) for _ in range(4))
    n = np.array([len(g) for g in groups], dtype=int)
    for size in np.unique(n):
        if size == 0:
            continue
        members = np.flatnonzero(n == size)
        values = np.sort(np.vstack([groups[i] for i in members]), axis=1)
        median[members] = np.median(values, axis=1)
        if size < 2:
            continue
        mean = values.mean(axis=1)
        sd = values.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            cv[members] = np.where(mean != 0, sd / mean, np.nan)
        if size % 2 == 0 and size <= EXACT_EVEN_MAX:
            lo[members], hi[members] = _even_interval(values, confidence)
        else:
            low, high = _median_interval(int(size), confidence)
            lo[members] = values[:, low].mean(axis=1)
            hi[members] = values[:, high].mean(axis=1)
    return pd.DataFrame({"median": median, "ci_lo": lo, "ci_hi": hi, "cv": cv, "n": n})


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
