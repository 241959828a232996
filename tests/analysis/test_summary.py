"""Rows (analysis/summary.py): runs of the same identity pooled; statistics over all their measured runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slmdeploy.analysis.runs import load_runs
from slmdeploy.analysis.stats import estimate
from slmdeploy.analysis.summary import bootstrap, summarize_rows
from slmdeploy.analysis.synthetic import write_run


@pytest.fixture
def runs(tmp_path):
    """Three valid benches of one thing (different spreads), one short (invalid) one of it, and one on
    another phone and one with other threads: three rows."""
    root = tmp_path / "runs"
    write_run(root, "a1", started_at="2026-12-01T10:00:01", jitter=0.01)
    write_run(root, "a2", started_at="2026-12-01T10:00:02", jitter=0.03, step_ns=31_000_000)
    write_run(root, "a3", started_at="2026-12-01T10:00:03", jitter=0.05, runs=7)
    write_run(root, "a-short", started_at="2026-12-01T10:00:04", runs=2, step_ns=10_000_000)
    write_run(root, "other-phone", started_at="2026-12-01T10:00:05", meta={"device": "adb:XYZ", "device_model": "Pixel 8"})
    write_run(root, "other-threads", started_at="2026-12-01T10:00:06", meta={"workload": {"threads": 4}})
    return load_runs(root)


def test_runs_of_one_identity_are_pooled(runs):
    rows = summarize_rows(runs)
    assert len(rows) == 3
    row = rows.iloc[0]
    assert row.run_ids == ["a1", "a2", "a3", "a-short"]
    assert (row.runs, row.valid_runs, row.invalid_runs, row.used_runs, row.valid) == (4, 3, 1, 3, True)
    pooled = [v for r in ("a1", "a2", "a3") for v in json.loads(runs.set_index("run_id").samples[r])["decode_tps"]]
    assert len(pooled) == 5 + 5 + 7 == row.decode_tps_n
    expected = bootstrap([np.array(pooled)]).iloc[0]
    assert (row.decode_tps_median, row.decode_tps_ci_lo, row.decode_tps_ci_hi) == pytest.approx(
        (expected["median"], expected.ci_lo, expected.ci_hi))
    assert row.decode_tps_median == pytest.approx(np.median(pooled))
    assert row.decode_tps_cv == pytest.approx(np.std(pooled, ddof=1) / np.mean(pooled))
    assert estimate(pooled).as_dict("decode_tps") == pytest.approx(  # a run's own interval: the same computation
        {k: row[k] for k in estimate(pooled).as_dict("decode_tps")})
    lo, _ = _resampled_interval(np.array(pooled))  # Monte Carlo resamples: the same interval up to their noise
    assert abs(lo - row.decode_tps_ci_lo) <= 0.25 * (row.decode_tps_ci_hi - row.decode_tps_ci_lo)
    assert row.invalid_reasons.startswith("2 measured runs (at least 3 needed)")
    assert row.decode_tps_ci_lo < row.decode_tps_median < row.decode_tps_ci_hi


def test_invalid_runs_are_pooled_only_when_asked(runs):
    everything = summarize_rows(runs, include_invalid=True).iloc[0]
    assert everything.used_runs == 4 and everything.decode_tps_n == 19 and not everything.valid
    assert everything.decode_tps_median > summarize_rows(runs).iloc[0].decode_tps_median  # the short run is faster


def test_identity_separates_devices_and_threads(runs):
    rows = summarize_rows(runs)
    assert [r for r in rows.run_ids] == [["a1", "a2", "a3", "a-short"], ["other-phone"], ["other-threads"]]
    assert list(rows.device_model) == ["host", "Pixel 8", "host"]


def test_a_row_of_only_invalid_runs_is_kept_without_numbers(tmp_path):
    write_run(tmp_path, "short", runs=2)
    row = summarize_rows(load_runs(tmp_path)).iloc[0]
    assert not row.valid and row.used_runs == 0 and row.decode_tps_n == 0 and np.isnan(row.decode_tps_median)
    assert "2 measured runs" in row.invalid_reasons


def _resampled_interval(values: np.ndarray, resamples: int = 100_000) -> tuple[float, float]:
    idx = np.random.default_rng(11).integers(0, len(values), size=(resamples, len(values)))
    return tuple(np.quantile(np.median(values[idx], axis=1), [0.025, 0.975]))


@pytest.mark.parametrize("n", [2, 3, 5, 7, 13, 15, 31, 101])
def test_the_exact_bootstrap_is_what_many_resamples_converge_to(n):
    """Odd counts (and 2): the exact quantiles are order statistics; 100,000 resamples land on them."""
    values = np.random.default_rng(n).lognormal(3, 0.3, size=n)
    got = bootstrap([values]).iloc[0]
    lo, hi = _resampled_interval(values)
    assert (got.ci_lo, got.ci_hi) == pytest.approx((lo, hi), rel=1e-9)
    if n % 2:
        assert got.ci_lo in values and got.ci_hi in values


@pytest.mark.parametrize("n", [4, 10, 20, 50, 240])
def test_even_counts_too(n):
    """An even count's median is the mean of two middle values: their joint ranks are exact up to 200
    values, the mean of the two ranks' quantiles above (a hair off at 240)."""
    values = np.random.default_rng(n).lognormal(3, 0.3, size=n)
    got = bootstrap([values]).iloc[0]
    lo, hi = _resampled_interval(values)
    assert abs(got.ci_lo - lo) <= 0.01 * (hi - lo) and abs(got.ci_hi - hi) <= 0.01 * (hi - lo)


def test_groups_of_any_sizes_are_summarised_together():
    rng = np.random.default_rng(7)
    groups = [rng.lognormal(3, 0.2, size=n) for n in [0, 1, 2, 5, 5, 13]]
    table = bootstrap(groups)
    alone = [bootstrap([g]).iloc[0] for g in groups]
    assert list(table.n) == [0, 1, 2, 5, 5, 13]
    assert np.isnan(table["median"][0]) and np.isnan(table.ci_lo[1]) and table["median"][1] == groups[1][0]
    for i in range(2, 6):
        assert (table["median"][i], table.ci_lo[i], table.ci_hi[i], table.cv[i]) == pytest.approx(
            (alone[i]["median"], alone[i].ci_lo, alone[i].ci_hi, alone[i].cv))
        assert table.ci_lo[i] <= table["median"][i] <= table.ci_hi[i]


def test_an_empty_frame_gives_an_empty_summary():
    import pandas as pd

    rows = summarize_rows(pd.DataFrame())
    assert rows.empty and "decode_tps_median" in rows.columns and "valid" in rows.columns
