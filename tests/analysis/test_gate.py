"""The regression gate's logic (analysis.gate) on run directories with chosen per-run values."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gate_runs import noisy, write_run  # noqa: E402

from slmdeploy.analysis import load_runs  # noqa: E402
from slmdeploy.analysis.gate import (INCONCLUSIVE, IMPROVEMENT, NO_DATA, REGRESSION, UNCHANGED, GateError,  # noqa: E402
                                     check_metrics, compare, parse_threshold)
from slmdeploy.analysis.rows import row_key  # noqa: E402
from slmdeploy.analysis.stats import change  # noqa: E402

BASE = noisy(100, 0.01, 10, seed=1)  # decode tok/s of 10 runs, 1% noise


def sides(tmp_path, base_values, cand_values, **kw):
    write_run(tmp_path / "base", "b1", base_values, **kw)
    write_run(tmp_path / "cand", "c1", cand_values, **kw)
    return load_runs(tmp_path / "base"), load_runs(tmp_path / "cand")


def only(result, metric):
    [r] = [r for r in result.results if r.metric.name == metric]
    return r


def test_ten_percent_slowdown_with_low_noise_is_a_regression(tmp_path):
    cand = [0.9 * v for v in noisy(100, 0.01, 10, seed=2)]
    result = compare(*sides(tmp_path, BASE, cand))
    decode = only(result, "decode_tps")
    assert decode.verdict == REGRESSION and decode.change.significant()
    assert decode.change.change_pct == pytest.approx(-10, abs=1.5)
    assert decode.change.baseline.n == decode.change.candidate.n == 10
    # prefill is 6x decode in these runs: slower too; TTFT (lower is better) rose ~11%: also a regression
    assert only(result, "prefill_tps").verdict == REGRESSION
    ttft = only(result, "ttft_ms")
    assert ttft.verdict == REGRESSION and ttft.change.change_pct == pytest.approx(11.1, abs=2)
    assert only(result, "peak_rss_mib").verdict == UNCHANGED  # same memory
    assert not result.passed and result.exit_code() == 1
    assert "-10" in decode.describe() or "-9" in decode.describe()
    assert "p=" in decode.describe() and "95% CI" in decode.describe()


def test_same_data_passes(tmp_path):
    result = compare(*sides(tmp_path, BASE, BASE))
    assert {r.verdict for r in result.results} == {UNCHANGED}
    assert all(r.change.change_pct == 0 for r in result.results)
    assert result.passed and result.exit_code() == 0 and result.matched == 1


def test_ten_percent_change_in_huge_noise_is_inconclusive_not_a_regression(tmp_path):
    base = noisy(100, 0.4, 10, seed=7)
    cand = [0.9 * v for v in base]  # medians differ by exactly 10%, but the runs overlap almost entirely
    result = compare(*sides(tmp_path, base, cand), metrics=["decode_tps"])
    decode = only(result, "decode_tps")
    assert decode.change.change_pct == pytest.approx(-10)
    assert decode.verdict == INCONCLUSIVE and not decode.change.significant()
    assert decode.change.p_value > 0.3
    assert decode.change.ci_lo_pct < 0 < decode.change.ci_hi_pct
    assert result.passed and result.exit_code() == 0
    assert "n=10/10" in decode.describe() and "inconclusive" in decode.describe()


def test_threshold_is_respected(tmp_path):
    cand = [0.97 * v for v in BASE]  # a real (significant) 3% slowdown
    frames = sides(tmp_path, BASE, cand)
    at_5 = only(compare(*frames, metrics=["decode_tps"], threshold_pct=5), "decode_tps")
    assert at_5.change.significant() and at_5.verdict == UNCHANGED
    at_2 = only(compare(*frames, metrics=["decode_tps"], threshold_pct=2), "decode_tps")
    assert at_2.verdict == REGRESSION
    assert only(compare(*frames, metrics=["decode_tps"], threshold_pct=3.5), "decode_tps").verdict == UNCHANGED


def test_improvement_and_lower_is_better_direction(tmp_path):
    faster = [1.1 * v for v in BASE]
    result = compare(*sides(tmp_path, BASE, faster, rss_mib=400.0))
    assert only(result, "decode_tps").verdict == IMPROVEMENT
    assert only(result, "ttft_ms").verdict == IMPROVEMENT  # TTFT fell
    assert result.passed
    # memory: 10% more peak RSS in every run is a regression (lower is better)
    write_run(tmp_path / "fat", "f1", BASE, rss_mib=440.0)
    mem = only(compare(load_runs(tmp_path / "base"), load_runs(tmp_path / "fat"), metrics=["peak_rss_mib"]),
               "peak_rss_mib")
    assert mem.change.change_pct == pytest.approx(10) and mem.verdict == REGRESSION


def test_runs_of_one_row_are_pooled_and_unmatched_rows_listed(tmp_path):
    write_run(tmp_path / "base", "b1", BASE[:5])
    write_run(tmp_path / "base", "b2", BASE[5:])  # a repeat of the same row
    write_run(tmp_path / "base", "b-q", BASE, target="host-xnnpack-8da4w", **{"quant": "8da4w"})
    write_run(tmp_path / "cand", "c1", BASE, runs_in_workload=7)  # a different run count still matches
    write_run(tmp_path / "cand", "c-p64", BASE, prompt=64)  # another workload: no baseline
    result = compare(load_runs(tmp_path / "base"), load_runs(tmp_path / "cand"), metrics=["decode_tps"])
    assert result.matched == 1
    decode = only(result, "decode_tps")
    assert decode.change.baseline.n == 10 and decode.change.candidate.n == 10
    assert [r.key.target for r in result.only_baseline] == ["host-xnnpack-8da4w"]
    assert [r.run_ids for r in result.only_candidate] == [["c-p64"]]
    assert "pp64+tg64" in result.only_candidate[0].key.label()
    assert result.exit_code() == 0 and result.exit_code(fail_unmatched=True) == 1
    data = result.as_dict()
    assert data["only_baseline"][0]["runs"] == ["b-q"] and data["matched_rows"] == 1


def test_matching_needs_model_target_device_workload_and_threads(tmp_path):
    base = dict(model="m", target="t", device="adb:SER1", device_model="Pixel 8", prompt=16, threads=4)
    key = row_key({"model": "m", "target": "t", "device": "adb:SER1", "device_model": "Pixel 8", "threads": 4.0,
                   "workload": json.dumps({"prompt_tokens": 16, "gen_tokens": 8, "runs": 5, "warmup": 1})})
    assert key.device == "adb:SER1 (Pixel 8)" and key.threads == "4"
    assert json.loads(key.workload) == {"prompt_tokens": 16, "gen_tokens": 8}
    write_run(tmp_path / "b", "r0", BASE, **base)
    for i, change_ in enumerate([dict(model="m2"), dict(target="t2"), dict(device="adb:SER2"),
                                 dict(prompt=32), dict(threads=2)]):
        write_run(tmp_path / f"c{i}", "r", BASE, **{**base, **change_})
        with pytest.raises(GateError, match="no row of the candidate matches"):
            compare(load_runs(tmp_path / "b"), load_runs(tmp_path / f"c{i}"))
    # another phone of the same model matches with device_by="model"
    result = compare(load_runs(tmp_path / "b"), load_runs(tmp_path / "c2"), device_by="model")
    assert result.matched == 1 and result.results[0].key.device == "Pixel 8"


def test_target_falls_back_to_runtime_quant_delegates(tmp_path):
    key = row_key({"model": "m", "runtime": "tflite", "quant": "int8", "delegates": "xnnpack+gpu",
                   "accelerator": "gpu", "device": "local", "workload": "{}"})
    assert key.target == "tflite/int8/xnnpack+gpu @gpu"


def test_invalid_and_incomplete_runs_are_excluded_unless_asked(tmp_path):
    write_run(tmp_path / "base", "b1", BASE)
    write_run(tmp_path / "cand", "c-good", BASE)
    write_run(tmp_path / "cand", "c-hot", [0.5 * v for v in BASE], strays_killed=1)  # validity says invalid
    write_run(tmp_path / "cand", "c-cut", [0.5 * v for v in BASE[:3]], status="incomplete")
    base, cand = load_runs(tmp_path / "base"), load_runs(tmp_path / "cand")
    assert "valid" in cand.columns
    result = compare(base, cand, metrics=["decode_tps"])
    assert only(result, "decode_tps").verdict == UNCHANGED and only(result, "decode_tps").change.candidate.n == 10
    assert {(e.run_id, e.reason) for e in result.excluded} == {
        ("c-hot", "invalid: 1 stray harness running on the device at the start (killed)"),
        ("c-cut", "status incomplete")}
    kept = compare(base, cand, metrics=["decode_tps"], include_invalid=True)
    assert only(kept, "decode_tps").change.candidate.n == 23 and not kept.excluded
    assert only(kept, "decode_tps").verdict == REGRESSION


def test_works_without_a_valid_column_and_from_a_results_database(tmp_path):
    from slmdeploy.analysis.store import store_runs

    base_dir = write_run(tmp_path / "base", "b1", BASE)
    cand_dir = write_run(tmp_path / "cand", "c1", [0.9 * v for v in BASE])
    store_runs([base_dir], tmp_path / "base.duckdb")
    base = load_runs(tmp_path / "base.duckdb").drop(columns=["valid", "invalid_reasons"])  # records made before validity
    result = compare(base, load_runs(cand_dir), metrics=["decode_tps"])
    assert only(result, "decode_tps").verdict == REGRESSION
    assert only(result, "decode_tps").change.change_pct == pytest.approx(-10)


def test_a_metric_missing_on_one_side_is_no_data_and_nothing_measured_is_an_error(tmp_path):
    frames = sides(tmp_path, BASE, BASE)
    result = compare(*frames, metrics=["decode_tps", "forward_ms"])
    assert only(result, "forward_ms").verdict == NO_DATA and only(result, "decode_tps").verdict == UNCHANGED
    with pytest.raises(GateError, match="no matched row measured forward_ms.*decode_tps"):
        compare(*frames, metrics=["forward_ms"])


def test_pooled_values_are_what_stats_change_sees(tmp_path):
    cand = [0.93 * v for v in noisy(100, 0.02, 10, seed=3)]
    r = only(compare(*sides(tmp_path, BASE, cand), metrics=["decode_tps"]), "decode_tps")
    # decode tok/s recomputed from integer nanoseconds: equal to the chosen values to ~1e-7
    expected = change(BASE, cand)
    assert r.change.change_pct == pytest.approx(expected.change_pct, rel=1e-5)
    assert r.change.p_value == pytest.approx(expected.p_value)


@pytest.mark.parametrize("text,value", [("5%", 5.0), ("5", 5.0), (" 2.5 % ", 2.5), ("0", 0.0)])
def test_threshold_parsing(text, value):
    assert parse_threshold(text) == value


@pytest.mark.parametrize("text", ["abc", "-5%", "nan", "inf%", "%", "5%%"])
def test_bad_thresholds_are_refused(text):
    with pytest.raises(GateError, match="--threshold .* is not a percentage"):
        parse_threshold(text)


def test_unknown_metric_names_the_known_ones():
    assert check_metrics(["ttft_ms", "decode_tps", "ttft_ms"]) == ("ttft_ms", "decode_tps")
    with pytest.raises(GateError, match="unknown metric 'tps'.*decode_tps"):
        check_metrics(["tps"])


def test_empty_or_sample_less_sides_are_errors(tmp_path):
    import pandas as pd

    frames = sides(tmp_path, BASE, BASE)
    with pytest.raises(GateError, match="the candidate holds no runs"):
        compare(frames[0], pd.DataFrame())
    with pytest.raises(GateError, match="no per-run samples"):
        compare(frames[0].drop(columns=["samples"]), frames[1])
    cut = frames[1].assign(status="failed")
    with pytest.raises(GateError, match="every run of the candidate is excluded.*--include-invalid"):
        compare(frames[0], cut)
