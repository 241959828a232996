"""The survey's claims as checks (analysis/claims.py): each verdict from synthetic runs built to make it hold or fail."""

import json

import pytest
from click.testing import CliRunner

from slmdeploy.analysis import load_runs
from slmdeploy.analysis.claims import FAILS, HOLDS, UNMEASURED, survey_claims
from slmdeploy.analysis.synthetic import trace_events, write_run
from slmdeploy.cli.main import cli

MIB = 1 << 20


def _run(root, name, *, model, quant="fp32", size_mib=10.0, params=10_000_000, step_ms=1.0, prefill_ms=40.0,
         layers=2, heads=4, kv_heads=4, cache_heads=None, runtime="executorch"):
    events = trace_events(runs=5, warmup=1, prompt=50, gen=8, prefill_ns=int(prefill_ms * 1e6),
                          step_ns=int(step_ms * 1e6), jitter=0.02)
    run_dir = write_run(root, name, events, meta={"model": model, "quant": quant, "params": params,
                                                  "model_size": int(size_mib * MIB), "runtime": runtime})
    arch = {"layers": layers, "heads": heads, "kv_heads": kv_heads, "head_dim": 16, "vocab_size": 512}
    llm = {"convention": "slmdeploy.llm/1", "max_seq_len": 128, "vocab_size": 512, "kv_cache": "internal",
           "cache_tensors": [f"cache_{i}" for i in range(2 * layers)], "cache_dtype": "float32",
           "cache_shape": [1, cache_heads or kv_heads, 128, 16]}
    (run_dir / "manifest.json").write_text(json.dumps({"model": {"architecture": arch}, "llm": llm}))
    return run_dir


def _checks(root):
    return {c.id: c for c in survey_claims(load_runs([root]))}


def test_decode_time_linear_in_bytes_holds_with_the_fitted_slope(tmp_path):
    for i, size in enumerate((10, 20, 30, 45, 60, 80)):  # decode ms/token = 0.5 + 0.05 x MiB
        _run(tmp_path, f"m{i}", model=f"m{i}", size_mib=size, step_ms=0.5 + 0.05 * size)
    check = _checks(tmp_path)["decode-bytes"]
    assert check.verdict == HOLDS, check.summary
    fit = check.evidence[0]["fit"]
    # the synthetic jitter moves single runs by a few percent, the medians hardly at all
    assert fit["slope_ms_per_mib"] == pytest.approx(0.05, rel=0.02) and fit["r2"] > 0.99 and fit["sizes"] == 6


def test_decode_time_unrelated_to_bytes_does_not_hold(tmp_path):
    for i, (size, step) in enumerate(((10, 3.0), (20, 1.0), (30, 2.5), (45, 1.2), (60, 2.9), (80, 1.1))):
        _run(tmp_path, f"m{i}", model=f"m{i}", size_mib=size, step_ms=step)
    check = _checks(tmp_path)["decode-bytes"]
    assert check.verdict == FAILS and check.evidence[0]["fit"]["r2"] < 0.8


def test_five_sizes_are_not_enough_for_the_fit(tmp_path):
    for i, size in enumerate((10, 20, 30, 45, 60)):
        _run(tmp_path, f"m{i}", model=f"m{i}", size_mib=size, step_ms=0.5 + 0.05 * size)
    check = _checks(tmp_path)["decode-bytes"]
    assert check.verdict == UNMEASURED and "largest here: 5" in check.summary


def test_kv_cache_shrink_read_from_the_artifact(tmp_path):
    _run(tmp_path, "gqa", model="gqa", heads=8, kv_heads=2)
    _run(tmp_path, "mha", model="mha", heads=4, kv_heads=4)
    check = _checks(tmp_path)["gqa-kv"]
    assert check.verdict == HOLDS, check.summary
    gqa = next(r for r in check.evidence if r["model"] == "gqa")
    # 4 tensors (2 layers x k, v) x 1 x 2 heads x 128 x 16 x 4 B = 64 KiB; multi-head: 8 heads, 256 KiB
    assert gqa["cache_mib"] == pytest.approx(64 / 1024) and gqa["mha_mib"] == pytest.approx(256 / 1024)
    assert gqa["shrink"] == pytest.approx(4.0)
    # an artifact that keeps a head per query head despite kv_heads 2 (an expanded cache) breaks the claim
    _run(tmp_path, "expanded", model="expanded", heads=8, kv_heads=2, cache_heads=8)
    assert _checks(tmp_path)["gqa-kv"].verdict == FAILS


def test_kv_claim_needs_a_grouped_model(tmp_path):
    _run(tmp_path, "mha", model="mha", heads=4, kv_heads=4)
    assert _checks(tmp_path)["gqa-kv"].verdict == UNMEASURED


def test_four_bit_shrink_pairs_fp32_and_4bit_of_one_model_and_runtime(tmp_path):
    _run(tmp_path, "a32", model="a", quant="fp32", size_mib=40)
    _run(tmp_path, "a4", model="a", quant="8da4w", size_mib=10)
    _run(tmp_path, "b32", model="b", quant="fp32", size_mib=40, runtime="llamacpp")
    _run(tmp_path, "b4", model="b", quant="q4_0", size_mib=6, runtime="llamacpp")
    _run(tmp_path, "c4", model="c", quant="8da4w", size_mib=6)  # no fp32 twin: not a pair
    check = _checks(tmp_path)["int4-size"]
    assert check.verdict == HOLDS and {(r["model"], round(r["shrink"], 2)) for r in check.evidence} == {
        ("a", 4.0), ("b", 6.67)}
    _run(tmp_path, "d32", model="d", quant="fp32", size_mib=40)
    _run(tmp_path, "d4", model="d", quant="8da4w", size_mib=20)  # 2x: an fp32 embedding left unquantized
    assert _checks(tmp_path)["int4-size"].verdict == FAILS


def test_prefill_differs_at_equal_size(tmp_path):
    _run(tmp_path, "deep", model="deep", params=100_000_000, layers=30, prefill_ms=52.0)
    _run(tmp_path, "wide", model="wide", params=105_000_000, layers=12, prefill_ms=40.0)
    _run(tmp_path, "big", model="big", params=300_000_000, layers=12, prefill_ms=90.0)  # not of equal size
    check = _checks(tmp_path)["prefill-architecture"]
    assert check.verdict == HOLDS, check.summary
    (pair,) = check.evidence
    assert (pair["model_a"], pair["model_b"]) == ("deep", "wide") and pair["differs"]
    assert pair["change_pct"] == pytest.approx(100 * (52 / 40 - 1), rel=0.02)  # tok/s: 50 / 40 ms vs 50 / 52 ms
    assert pair["p"] < 0.05


def test_equal_prefill_at_equal_size_does_not_hold(tmp_path):
    _run(tmp_path, "deep", model="deep", params=100_000_000, layers=30, prefill_ms=40.0)
    _run(tmp_path, "wide", model="wide", params=105_000_000, layers=12, prefill_ms=40.0)
    check = _checks(tmp_path)["prefill-architecture"]
    assert check.verdict == FAILS and not check.evidence[0]["differs"]


def test_report_survey_prints_and_exports_the_verdicts(tmp_path):
    for i, size in enumerate((10, 20, 30, 45, 60, 80)):
        _run(tmp_path, f"m{i}", model=f"m{i}", size_mib=size, step_ms=0.5 + 0.05 * size, heads=8, kv_heads=2)
    text = CliRunner().invoke(cli, ["report", str(tmp_path), "--survey", "--no-compare"], terminal_width=200)
    assert text.exit_code == 0, text.output
    assert "survey claims" in text.output and "holds" in text.output and "not measured" in text.output
    out = CliRunner().invoke(cli, ["report", str(tmp_path), "--survey", "--json"])
    claims = {c["id"]: c for c in json.loads(out.output)["claims"]}
    assert claims["decode-bytes"]["verdict"] == HOLDS and claims["gqa-kv"]["verdict"] == HOLDS
    assert claims["int4-size"]["verdict"] == UNMEASURED
    page = tmp_path / "claims.html"
    res = CliRunner().invoke(cli, ["report", str(tmp_path), "--survey", "--html", str(page), "--json"])
    charts = json.loads(res.output)["html"]["charts"]
    assert "claim-decode-bytes" in charts and "claim-gqa-kv" in charts and "claim-int4-size" not in charts
    html = page.read_text()
    assert "id='verdict-decode-bytes'" in html and "<span class='ok'>holds</span>" in html
