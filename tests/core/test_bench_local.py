"""The whole host path: bench on the local device, run directory, results database, report."""

import json
import statistics

import pytest

from slmdeploy import analysis
from slmdeploy.analysis.store import read_table
from slmdeploy.bench import Workload, bench
from slmdeploy.errors import HarnessError, WorkloadError
from slmdeploy.harness.trace import read_trace

SMALL = Workload(prompt_tokens=16, gen_tokens=8, warmup=1, runs=3, telemetry_interval_ms=100)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def fp32_run(tiny_fp32, runs_dir):
    return bench(tiny_fp32, "local", workload=SMALL, runs_dir=runs_dir, progress=False)


def test_run_directory_holds_everything(fp32_run, tiny_fp32):
    files = {p.name for p in fp32_run.run_dir.iterdir()}
    assert {"trace.jsonl", "device.json", "manifest.json", "harness.stdout", "harness.stderr", "run.json"} <= files
    meta = json.loads((fp32_run.run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["harness"] == "python" and meta["harness_exit_code"] == 0
    assert meta["strays_killed"] == 0  # no harness was left running here (analysis/validity.py checks it)
    assert meta["artifact_sha256"] == tiny_fp32.manifest.model_file.sha256
    device = json.loads((fp32_run.run_dir / "device.json").read_text())
    assert device["spec"] == "local" and device["cpu_cores"] >= 1 and device["ram_kib"] > 0


def test_summary_numbers_come_from_the_trace(fp32_run):
    trace = read_trace(fp32_run.run_dir / "trace.jsonl")
    decode = [e for e in trace.iterations() if e["phase"] == "decode"]
    prefill = [e for e in trace.iterations() if e["phase"] == "prefill"]
    assert len(decode) == len(prefill) == 3
    tps = [8 / (e["ns"] / 1e9) for e in decode]
    s = fp32_run.summary
    assert s["decode_tps"] == pytest.approx(statistics.fmean(tps))
    assert s["decode_tps_sd"] == pytest.approx(statistics.stdev(tps))
    assert s["prefill_tps"] == pytest.approx(statistics.fmean(16 / (e["ns"] / 1e9) for e in prefill))
    assert s["ttft_ms"] == pytest.approx(statistics.fmean(e["ns"] for e in prefill) / 1e6)
    assert s["load_ms"] == pytest.approx(trace.of("load")[0]["ns"] / 1e6)
    assert s["peak_rss_mib"] == pytest.approx(max(e["hwm_kib"] for e in trace.events if "hwm_kib" in e) / 1024)
    assert s["prefill_tps"] > s["decode_tps"] > 0  # batched prefill beats one-token decode
    assert s["complete"] and s["measured_runs"] == 3


def test_results_database_and_load_runs_agree(fp32_run, runs_dir):
    db = runs_dir / "results.duckdb"
    runs = read_table(db)
    row = runs[runs.run_id == fp32_run.run_dir.name].iloc[0]
    assert row.status == "complete" and row.model == "llama-tiny" and row.quant == "fp32"
    assert row.decode_tps == pytest.approx(fp32_run.summary["decode_tps"])
    iterations = read_table(db, "iterations")
    mine = iterations[iterations.run_id == fp32_run.run_dir.name]
    assert len(mine) == 8 and set(mine.phase) == {"prefill", "decode"}
    from_dir = analysis.load_runs(fp32_run.run_dir)
    from_db = analysis.load_runs(db)
    assert from_dir.iloc[0].decode_tps == pytest.approx(from_db[from_db.run_id == fp32_run.run_dir.name].iloc[0].decode_tps)


def test_comparison_against_a_baseline(fp32_run, tiny_8da4w, runs_dir):
    q_run = bench(tiny_8da4w, "local", workload=SMALL, runs_dir=runs_dir, progress=False)
    frame = analysis.load_runs([fp32_run.run_dir, q_run.run_dir])
    # 3 runs of 24 tokens of a tiny model take well under the 1 s a valid run needs (docs/statistics.md):
    # both runs are flagged, and a default comparison leaves them out
    assert not frame.valid.any() and all("s measured in all" in r for r in frame.invalid_reasons)
    assert analysis.comparison(frame).empty
    cmp = analysis.comparison(frame, include_invalid=True)
    assert list(cmp.run_id) == [fp32_run.run_dir.name, q_run.run_dir.name]
    assert cmp.iloc[0]["decode_tps_delta_pct"] == pytest.approx(0.0)
    expected = (q_run.summary["decode_tps"] / fp32_run.summary["decode_tps"] - 1) * 100
    assert cmp.iloc[1]["decode_tps_delta_pct"] == pytest.approx(expected)
    assert cmp.iloc[1]["model_size_delta_pct"] < -60  # int4 weights


def test_workload_longer_than_the_artifact_is_refused_before_running(tiny_fp32, tmp_path):
    with pytest.raises(WorkloadError, match="exceed the artifact's max sequence length 256"):
        bench(tiny_fp32, "local", workload=Workload(prompt_tokens=200, gen_tokens=100), runs_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_static_prefill_takes_only_its_own_prompt_length(tiny_fp32):
    """TFLite programs have a fixed prefill shape: any other --prompt is refused up front, with the fix."""
    import dataclasses

    m = tiny_fp32.manifest
    static = dataclasses.replace(m, runtime="tflite",
                                 llm=dataclasses.replace(m.llm, dynamic_prefill=False, prefill_seq_len=32))
    Workload(prompt_tokens=32, gen_tokens=8).check(static)
    with pytest.raises(WorkloadError, match=r"exactly 32 tokens.*pass --prompt 32.*prefill_len = 16"):
        Workload(prompt_tokens=16, gen_tokens=8).check(static)
    Workload(prompt_tokens=16, gen_tokens=8).check(m)  # a dynamic prefill takes any length


def test_an_interrupted_run_is_stored_incomplete_with_its_iterations(tiny_fp32, tmp_path):
    long = Workload(prompt_tokens=16, gen_tokens=32, warmup=0, runs=100_000, telemetry_interval_ms=0)
    with pytest.raises(HarnessError, match="incomplete"):
        bench(tiny_fp32, "local", workload=long, runs_dir=tmp_path, timeout=30, progress=False)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "incomplete" and "timed out" in meta["error"]
    trace = read_trace(run_dir / "trace.jsonl")
    assert not trace.complete and len(list(trace.iterations())) >= 2
    row = read_table(tmp_path / "results.duckdb").iloc[0]
    assert row.status == "incomplete" and row.measured_runs >= 1 and row.decode_tps > 0
