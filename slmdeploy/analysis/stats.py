"""Statistics over repeated measurements: medians with bootstrap confidence intervals.

A benchmark row holds a handful of measured runs (5 by default), rarely normal: one slow run
from a background task skews a mean, so rows report the median with a percentile-bootstrap
95% CI and the coefficient of variation. A comparison of two rows calls a change real only
when the bootstrap CI of the relative change of medians excludes zero *and* a Mann–Whitney U
test on the per-run values agrees; with too few runs neither can, and the verdict says so.

A median's interval is the exact bootstrap one (``median_ci``: no resampling, deterministic);
the relative change of two medians is resampled from a fixed seed, so the same values give the
same verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from slmdeploy.analysis.median_ci import CONFIDENCE, median_intervals

RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Estimate:
    """The median of ``n`` values, its bootstrap CI (``lo``..``hi``) and coefficient of variation."""

    median: float | None
    lo: float | None
    hi: float | None
    cv: float | None
    n: int

    def as_dict(self, prefix: str) -> dict[str, float | int | None]:
        return {f"{prefix}_median": self.median, f"{prefix}_ci_lo": self.lo, f"{prefix}_ci_hi": self.hi,
                f"{prefix}_cv": self.cv, f"{prefix}_n": self.n}


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``values`` as a float array without NaN/inf (a missing measurement is not a zero)."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _resampled_medians(arr: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.integers(0, len(arr), size=(resamples, len(arr)))
    return np.median(arr[idx], axis=1)


def estimate(values: Sequence[float] | np.ndarray, *, confidence: float = CONFIDENCE) -> Estimate:
    """Median, exact percentile-bootstrap CI and CV of the finite ``values``; None where undefined.

    One value has no interval (``lo``/``hi`` None): an interval of width zero would claim a
    certainty that one run cannot give.
    """
    arr = finite(values)
    if len(arr) == 0:
        return Estimate(None, None, None, None, 0)
    found = median_intervals([arr], confidence=confidence)

    def number(name: str) -> float | None:
        value = float(found[name][0])
        return value if math.isfinite(value) else None

    return Estimate(number("median"), number("ci_lo"), number("ci_hi"), number("cv"), len(arr))


@dataclass(frozen=True)
class Change:
    """Candidate vs baseline on one metric: relative change of medians (%), its CI, the U test."""

    baseline: Estimate
    candidate: Estimate
    change_pct: float | None
    ci_lo_pct: float | None
    ci_hi_pct: float | None
    p_value: float | None

    def significant(self, alpha: float = 1 - CONFIDENCE) -> bool:
        """Both tests agree the medians differ: the CI excludes 0 and the U test rejects at ``alpha``."""
        if self.ci_lo_pct is None or self.ci_hi_pct is None or self.p_value is None:
            return False
        return (self.ci_lo_pct > 0 or self.ci_hi_pct < 0) and self.p_value < alpha


def change(baseline: Sequence[float] | np.ndarray, candidate: Sequence[float] | np.ndarray, *,
           confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> Change:
    """How ``candidate`` differs from ``baseline`` (per-run values of one metric)."""
    base, cand = finite(baseline), finite(candidate)
    b_est = estimate(base, confidence=confidence)
    c_est = estimate(cand, confidence=confidence)
    if not b_est.median or c_est.median is None:
        return Change(b_est, c_est, None, None, None, None)
    pct = (c_est.median / b_est.median - 1) * 100
    if len(base) < 2 or len(cand) < 2:
        return Change(b_est, c_est, pct, None, None, None)
    rng = np.random.default_rng(seed)
    b_meds = _resampled_medians(base, resamples, rng)
    c_meds = _resampled_medians(cand, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (c_meds / b_meds - 1) * 100
    ratios = ratios[np.isfinite(ratios)]
    alpha = (1 - confidence) / 2
    lo, hi = (float(q) for q in np.quantile(ratios, [alpha, 1 - alpha])) if len(ratios) else (None, None)
    return Change(b_est, c_est, pct, lo, hi, mann_whitney_p(base, cand))


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided Mann–Whitney U p-value (exact for small samples without ties), None if undefined."""
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2:
        return None
    if np.ptp(np.concatenate([a, b])) == 0:
        return 1.0  # all values equal: no evidence of a difference
    p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return p if math.isfinite(p) else None
