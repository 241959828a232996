"""The CI regression gate: a candidate's runs against a baseline's, row by row, metric by metric.

A *row* is one measured configuration: the same model, target, device, workload and thread
count (``analysis.rows.row_key``, the definition ``report`` groups by too). Both sides may hold
several runs of a row (study repeats, re-runs); their per-measured-run values (the ``samples``
column, see ``analysis.samples``) are pooled (``rows.pooled_rows``). A change is a
**regression** only when it goes the bad way, its magnitude exceeds the threshold, *and*
``stats.change`` calls it significant (bootstrap CI of the change excludes 0 and Mann–Whitney
agrees): a noisy phone must not fail a merge request on chance, nor a real 2% drift on a 5%
gate. A change beyond the threshold that the statistics cannot confirm is **inconclusive**
(reported with n and p so that someone can decide to measure more runs).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pandas as pd

from slmdeploy.analysis.rows import DEVICE_BY, RowKey, pooled_rows, present, text
from slmdeploy.analysis.samples import METRICS, Metric
from slmdeploy.analysis.stats import Change, change
from slmdeploy.errors import SlmdeployError

DEFAULT_METRICS = ("decode_tps", "prefill_tps", "ttft_ms", "peak_rss_mib")
DEFAULT_THRESHOLD_PCT = 5.0

REGRESSION, IMPROVEMENT, INCONCLUSIVE, UNCHANGED, NO_DATA = (
    "regression", "improvement", "inconclusive", "unchanged", "no data")


class GateError(SlmdeployError):
    """The comparison cannot be made as asked (bad threshold, unknown metric, nothing matched)."""

    exit_code = 2


def parse_threshold(text: str | float) -> float:
    """``5%``, ``5`` or ``2.5%`` -> percent; a negative, infinite or non-numeric value is an error."""
    raw = str(text).strip()
    number = raw[:-1].strip() if raw.endswith("%") else raw
    try:
        value = float(number)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise GateError(f"--threshold {raw!r} is not a percentage >= 0; pass e.g. 5% or 2.5.")
    return value


def check_metrics(names: Iterable[str]) -> tuple[str, ...]:
    """The metric names, de-duplicated in order; an unknown one is an error that lists the known."""
    out: list[str] = []
    for name in names:
        if name not in METRICS:
            raise GateError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}.")
        if name not in out:
            out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class Excluded:
    """A run left out of the comparison, and why (invalid, or not complete)."""

    side: str
    run_id: str
    reason: str


def usable_runs(frame: pd.DataFrame, side: str, include_invalid: bool = False
                ) -> tuple[pd.DataFrame, list[Excluded]]:
    """The runs a comparison may use (a frame of them): complete, and valid where the records say
    (a ``valid`` column). Without one (records made before validity was judged) every complete run counts.
    """
    used, excluded = [], []
    for i, run in enumerate(frame.to_dict("records")):
        run_id = text(run.get("run_id"))
        status = run.get("status")
        if not include_invalid and present(status) and status != "complete":
            excluded.append(Excluded(side, run_id, f"status {status}"))
            continue
        valid = run.get("valid")
        if not include_invalid and present(valid) and not bool(valid):
            reasons = run.get("invalid_reasons")
            if isinstance(reasons, str):
                try:
                    reasons = json.loads(reasons)
                except ValueError:
                    pass
            if isinstance(reasons, (list, tuple)):
                reasons = "; ".join(map(str, reasons))
            excluded.append(Excluded(side, run_id, f"invalid: {reasons}" if present(reasons) else "invalid"))
            continue
        used.append(i)
    return frame.iloc[used], excluded


@dataclass
class Row:
    """One configuration (``rows.row_key``) on one side: its runs and their pooled per-run values."""

    key: RowKey
    run_ids: list[str] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**self.key.as_dict(), "runs": list(self.run_ids)}


def group_rows(frame: pd.DataFrame, device_by: str = "spec") -> dict[RowKey, Row]:
    """The frame's rows (``rows.pooled_rows``: the same rows ``summarize_rows`` reports) by key."""
    ids = [text(r) for r in frame["run_id"]] if "run_id" in frame.columns else ["-"] * len(frame)
    rows: dict[RowKey, Row] = {}
    for pooled in pooled_rows(frame, device_by=device_by):
        if pooled.unreadable:
            raise GateError(f"run {ids[pooled.unreadable[0]]}: its samples column is not a JSON object; re-ingest "
                            "it from its run directory (slmdeploy compare RUN_DIRS ...).")
        rows[pooled.key] = Row(pooled.key, [ids[i] for i in pooled.members],
                               {m: v.tolist() for m, v in pooled.values.items()})
    return rows


@dataclass(frozen=True)
class MetricResult:
    """One (row, metric) of the gate: the change and what it means."""

    key: RowKey
    metric: Metric
    change: Change
    verdict: str
    threshold_pct: float

    @property
    def label(self) -> str:
        return self.key.label()

    def describe(self) -> str:
        """One line for a CI log or a JUnit failure message: change, CI, p, n."""
        c = self.change
        if c.change_pct is None:
            return f"{self.metric.label}: no data (baseline n={c.baseline.n}, candidate n={c.candidate.n})"
        ci = (f"95% CI {c.ci_lo_pct:+.1f}%..{c.ci_hi_pct:+.1f}%" if c.ci_lo_pct is not None and c.ci_hi_pct is not None
              else "no CI")
        p = f"p={c.p_value:.2g}" if c.p_value is not None else "p=n/a"
        return (f"{self.metric.label} {c.change_pct:+.1f}% ({ci}, {p}, n={c.baseline.n}/{c.candidate.n}; "
                f"{_fmt(c.baseline.median)} -> {_fmt(c.candidate.median)} {self.metric.unit}; "
                f"threshold {self.threshold_pct:g}%): {self.verdict}")

    def as_dict(self) -> dict[str, Any]:
        c = self.change
        return {"row": self.label, "metric": self.metric.name, "unit": self.metric.unit,
                "higher_is_better": self.metric.higher_is_better, "verdict": self.verdict,
                "change_pct": c.change_pct, "ci_lo_pct": c.ci_lo_pct, "ci_hi_pct": c.ci_hi_pct, "p_value": c.p_value,
                "significant": c.significant(),
                "baseline": {"median": c.baseline.median, "ci_lo": c.baseline.lo, "ci_hi": c.baseline.hi,
                             "cv": c.baseline.cv, "n": c.baseline.n},
                "candidate": {"median": c.candidate.median, "ci_lo": c.candidate.lo, "ci_hi": c.candidate.hi,
                              "cv": c.candidate.cv, "n": c.candidate.n}}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"


def verdict(c: Change, metric: Metric, threshold_pct: float) -> str:
    """regression / improvement (beyond threshold and significant), inconclusive (beyond, not
    significant), unchanged (within threshold), no data (a side has no values)."""
    if c.change_pct is None:
        return NO_DATA
    if abs(c.change_pct) <= threshold_pct:
        return UNCHANGED
    if not c.significant():
        return INCONCLUSIVE
    worse = c.change_pct < 0 if metric.higher_is_better else c.change_pct > 0
    return REGRESSION if worse else IMPROVEMENT


@dataclass
class GateResult:
    """Everything ``slmdeploy compare`` reports; ``exit_code`` is what CI acts on."""

    threshold_pct: float
    metrics: tuple[str, ...]
    results: list[MetricResult]
    only_baseline: list[Row]
    only_candidate: list[Row]
    excluded: list[Excluded]
    matched: int

    def of(self, kind: str) -> list[MetricResult]:
        return [r for r in self.results if r.verdict == kind]

    @property
    def regressions(self) -> list[MetricResult]:
        return self.of(REGRESSION)

    @property
    def passed(self) -> bool:
        return not self.regressions

    def exit_code(self, fail_unmatched: bool = False) -> int:
        """1 on a regression (or, with ``fail_unmatched``, a row one side lacks); else 0."""
        unmatched = bool(self.only_baseline or self.only_candidate)
        return 1 if self.regressions or (fail_unmatched and unmatched) else 0

    def counts(self) -> dict[str, int]:
        return {k: len(self.of(k)) for k in (REGRESSION, IMPROVEMENT, INCONCLUSIVE, UNCHANGED, NO_DATA)}

    def summary(self) -> str:
        c = self.counts()
        head = "FAIL" if self.regressions else "PASS"
        parts = [f"{n} {k}{'s' if n != 1 and k in (REGRESSION, IMPROVEMENT) else ''}" for k, n in c.items() if n]
        unmatched = len(self.only_baseline) + len(self.only_candidate)
        tail = f"; {unmatched} unmatched row{'s' if unmatched != 1 else ''}" if unmatched else ""
        return (f"{head}: {self.matched} matched row{'s' if self.matched != 1 else ''}, "
                f"{', '.join(parts) or 'nothing compared'}{tail} (threshold {self.threshold_pct:g}%)")

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "summary": self.summary(), "threshold_pct": self.threshold_pct,
                "metrics": list(self.metrics), "matched_rows": self.matched, "counts": self.counts(),
                "results": [r.as_dict() for r in self.results],
                "only_baseline": [r.as_dict() for r in self.only_baseline],
                "only_candidate": [r.as_dict() for r in self.only_candidate],
                "excluded": [{"side": e.side, "run_id": e.run_id, "reason": e.reason} for e in self.excluded]}


def compare(baseline: pd.DataFrame, candidate: pd.DataFrame, metrics: Sequence[str] = DEFAULT_METRICS,
            threshold_pct: float = DEFAULT_THRESHOLD_PCT, *, include_invalid: bool = False,
            device_by: str = "spec") -> GateResult:
    """Match the two frames' runs (``analysis.load_runs``) by row and judge every (row, metric).

    Raises ``GateError`` when nothing can be compared: no runs, no samples, no row in common,
    or no compared metric measured in any matched row (a gate that checks nothing must not pass).
    """
    metrics = check_metrics(metrics)
    if threshold_pct < 0 or not math.isfinite(threshold_pct):
        raise GateError(f"threshold {threshold_pct}% must be a finite percentage >= 0.")
    if device_by not in DEVICE_BY:
        raise GateError(f"device matching {device_by!r} is neither 'spec' nor 'model'.")
    sides: dict[str, dict[RowKey, Row]] = {}
    excluded: list[Excluded] = []
    for side, frame in (("baseline", baseline), ("candidate", candidate)):
        if frame.empty:
            raise GateError(f"the {side} holds no runs.")
        if "samples" not in frame.columns:
            raise GateError(f"the {side}'s records have no per-run samples (stored by an older slmdeploy); "
                            "compare the run directories instead of the database.")
        used, left_out = usable_runs(frame, side, include_invalid)
        excluded += left_out
        if used.empty:
            raise GateError(f"every run of the {side} is excluded ({left_out[0].reason}, ...); "
                            "pass --include-invalid to compare them anyway.")
        sides[side] = group_rows(used, device_by)
    base, cand = sides["baseline"], sides["candidate"]
    common = sorted(set(base) & set(cand))
    if not common:
        raise GateError(
            f"no row of the candidate matches the baseline (model, target, device, workload, threads): baseline has "
            f"{_few(base)}; candidate has {_few(cand)}."
            + (" Different phones of one model? pass --match-device model." if device_by == "spec" else ""))
    results = []
    for key in common:
        for name in metrics:
            metric = METRICS[name]
            c = change(base[key].values.get(name, []), cand[key].values.get(name, []))
            results.append(MetricResult(key, metric, c, verdict(c, metric, threshold_pct), threshold_pct))
    if all(r.verdict == NO_DATA for r in results):
        measured = sorted({m for k in common for m in (*base[k].values, *cand[k].values)})
        raise GateError(f"no matched row measured {', '.join(metrics)}; these runs have "
                        f"{', '.join(measured) or 'no per-run values'} (choose with --metric).")
    return GateResult(threshold_pct, metrics, results,
                      only_baseline=[base[k] for k in sorted(set(base) - set(cand))],
                      only_candidate=[cand[k] for k in sorted(set(cand) - set(base))],
                      excluded=excluded, matched=len(common))


def _few(rows: dict[RowKey, Row], limit: int = 2) -> str:
    labels = [k.label() for k in sorted(rows)]
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return "; ".join(labels[:limit]) + more
