"""Op-level profiles: ETDumps from both harnesses, read by slmdeploy.analysis.etdump."""

from __future__ import annotations

import pytest

from slmdeploy.analysis.etdump import COLUMNS, EtdumpError, execute_phases, op_breakdown, program_backends, summary
from slmdeploy.harness.trace import read_trace


@pytest.fixture(scope="module")
def profiled_runs(harness, tiny_fp32, tmp_path_factory):
    """The same small LLM workload profiled by the native and by the Python harness."""
    out = tmp_path_factory.mktemp("etdump")
    runs = {}
    for name in ("native", "python"):
        args = harness.llm_args(tiny_fp32, out / f"{name}.jsonl", prompt_tokens=8, gen_tokens=4, warmup=1, runs=2,
                                telemetry_interval_ms=0, etdump=str(out / f"{name}.etdp"))
        proc = harness.run(args) if name == "native" else harness.run_python(args)
        assert proc.returncode == 0, proc.stderr
        runs[name] = {"etdump": out / f"{name}.etdp", "trace": out / f"{name}.jsonl"}
    return runs


@pytest.mark.parametrize("which", ["native", "python"])
def test_breakdown_partitions_the_execute_time(profiled_runs, tiny_fp32, which):
    run = profiled_runs[which]
    df = op_breakdown(run["etdump"], artifact=tiny_fp32.path, trace=run["trace"])
    assert list(df.columns) == COLUMNS
    s = summary(df)
    # 3 runs x (1 prefill + 4 decode steps), each one Method::execute
    assert s["executes"] == 15 == len(execute_phases(run["trace"]))
    assert s["execute_ms"] > 0 and 0 < s["delegate_share"] < 1 and 0 < s["operator_share"] < 1
    assert s["operator_ms"] + s["delegate_ms"] <= s["execute_ms"] and s["overhead_ms"] >= 0
    delegate = df[df["category"] == "delegate_call"]
    assert delegate["backend"].tolist() == ["XnnpackBackend"]  # named from the program without an ETRecord
    subgraphs = len(program_backends(tiny_fp32.model_file))  # every delegated subgraph of the program
    assert subgraphs > 10 and delegate["instances"].item() == subgraphs
    assert delegate["calls"].item() == subgraphs * 15
    gemm = df[(df["category"] == "delegated_op") & df["op"].str.startswith("Fully Connected")]
    assert gemm["total_ms"].sum() > 0
    ops = set(df.loc[df["category"] == "operator", "op"])
    assert {"embedding.out", "index_put.out", "where.self_out"} <= ops
    assert df["total_ms"].is_monotonic_decreasing


def test_native_and_python_profiles_have_the_same_operators(profiled_runs, tiny_fp32):
    frames = {k: op_breakdown(v["etdump"], program=tiny_fp32.model_file) for k, v in profiled_runs.items()}
    keyed = {k: df.set_index(["op", "category"])[["instances", "calls"]].sort_index() for k, df in frames.items()}
    assert keyed["native"].equals(keyed["python"])


def test_phase_split_follows_the_trace(profiled_runs, tiny_fp32):
    run = profiled_runs["native"]
    whole = summary(op_breakdown(run["etdump"], program=tiny_fp32.model_file, trace=run["trace"]))
    prefill = op_breakdown(run["etdump"], program=tiny_fp32.model_file, trace=run["trace"], phase="prefill")
    decode = op_breakdown(run["etdump"], program=tiny_fp32.model_file, trace=run["trace"], phase="decode",
                          include_warmup=False)
    assert summary(prefill)["executes"] == 3 and summary(decode)["executes"] == 8
    calls = prefill.loc[prefill["category"] == "delegate_call", ["instances", "calls"]]
    assert (calls["calls"] == calls["instances"] * 3).all()
    # a 8-token prefill costs more per execute than a single-token decode step
    assert summary(prefill)["execute_mean_ms"] > summary(decode)["execute_mean_ms"]
    assert summary(prefill)["execute_ms"] + summary(decode)["execute_ms"] < whole["execute_ms"]
    with pytest.raises(EtdumpError, match="no 'forward' executes"):
        op_breakdown(run["etdump"], trace=run["trace"], phase="forward")
    with pytest.raises(EtdumpError, match="need the run's trace"):
        op_breakdown(run["etdump"], phase="decode")


def test_etrecord_adds_aten_ops_and_backend_names(harness, small_module_pte, tmp_path):
    etdump, trace = tmp_path / "m.etdp", tmp_path / "m.jsonl"
    proc = harness.run(["--model", str(small_module_pte["pte"]), "--trace", str(trace), "--workload", "generic",
                        "--iterations", "4", "--runs", "2", "--etdump", str(etdump)])
    assert proc.returncode == 0, proc.stderr
    df = op_breakdown(etdump, etrecord=small_module_pte["etrecord"], trace=trace, include_warmup=False)
    assert summary(df)["executes"] == 8 and df.attrs["etrecord"] == str(small_module_pte["etrecord"])
    (op,) = df[df["category"] == "operator"].itertuples()
    assert op.op == "sum.IntList_out" and op.aten_ops == "aten.sum.dim_IntList" and op.calls == 8
    delegated = df[df["category"] == "delegated_op"]
    assert set(delegated["backend"]) == {"XnnpackBackend"}
    assert delegated.loc[delegated["op"] == "Fully Connected (NC, F32) GEMM", "instances"].item() == 2
    assert read_trace(trace).complete


def test_mismatched_trace_and_missing_file_are_clear_errors(profiled_runs, tmp_path):
    run = profiled_runs["native"]
    with pytest.raises(EtdumpError, match="no ETDump at"):
        op_breakdown(tmp_path / "missing.etdp")
    other = tmp_path / "other.jsonl"
    lines = run["trace"].read_text().splitlines()
    other.write_text("\n".join(line for line in lines if '"warmup":true' not in line) + "\n")
    with pytest.raises(EtdumpError, match="the trace has 10 executes but the ETDump 15"):
        op_breakdown(run["etdump"], trace=other, phase="decode")
