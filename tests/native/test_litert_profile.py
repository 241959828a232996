"""--litert-profile: LiteRT's op profiler in the native harness, and its analysis.

The harness enables the profiler through LiteRT's runtime options, records the measured
runs only, and writes one record per event (``slmdeploy.litert-profile/1``);
``slmdeploy.analysis.litert_profile.op_breakdown`` turns that into the ETDump table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slmdeploy.analysis.etdump import COLUMNS, summary
from slmdeploy.analysis.litert_profile import FORMAT, LiteRtProfileError, events_frame, op_breakdown
from slmdeploy.harness.trace import read_trace

OP_KINDS = {"operator", "delegate_operator", "delegate_profiled_operator"}


@pytest.fixture(scope="module")
def wide_tflite(tmp_path_factory) -> Path:
    """A generic model with real work in XNNPACK (two GEMMs) and a TFLite kernel outside it (CUMSUM)."""
    import litert_torch
    import torch

    class Wide(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = torch.nn.Linear(512, 512)
            self.l2 = torch.nn.Linear(512, 256)

        def forward(self, x):
            return self.l2(torch.relu(self.l1(x)).cumsum(0))

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wide-tflite") / "wide.tflite"
    litert_torch.convert(Wide().eval(), (torch.randn(64, 512),)).export(str(path))
    return path


def _generic(harness, model: Path, tmp_path: Path, name: str, *, runs: int, warmup: int = 1, iterations: int = 4):
    trace, profile = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
    proc = harness.run(["--model", str(model), "--trace", str(trace), "--runtime", "tflite", "--workload", "generic",
                        "--iterations", str(iterations), "--warmup", str(warmup), "--runs", str(runs),
                        "--threads", "1", "--litert-profile", str(profile)])
    assert proc.returncode == 0, proc.stderr
    assert read_trace(trace).complete
    return json.loads(profile.read_text()), trace, profile


def _toy(harness, toy: dict, tmp_path: Path, name: str, *, runs: int, warmup: int = 1, gen: int = 5):
    trace, profile = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.json"
    proc = harness.run(["--model", str(toy["path"]), "--trace", str(trace), "--runtime", "tflite",
                        "--prompt-tokens", str(toy["prefill"]), "--gen-tokens", str(gen),
                        "--vocab-size", str(toy["vocab"]), "--prefill-method", "prefill", "--decode-method", "decode",
                        "--warmup", str(warmup), "--runs", str(runs), "--threads", "1",
                        "--litert-profile", str(profile)])
    assert proc.returncode == 0, proc.stderr
    assert read_trace(trace).complete
    return json.loads(profile.read_text()), trace, profile


def _measured_ms(trace: Path) -> float:
    total = 0
    for e in read_trace(trace).iterations(include_warmup=False):
        total += sum(e["step_ns"]) if "step_ns" in e else e["ns"]
    return total / 1e6


def _check_structure(data: dict) -> None:
    """Calls partition the events in order; every call has one Invoke; op events name their node."""
    assert data["format"] == FORMAT and data["runtime_version"]
    events = data["events"]
    first = 0
    for k, call in enumerate(data["calls"]):
        assert call["call"] == k and call["first_event"] == first and call["events"] > 0
        mine = events[first:first + call["events"]]
        assert all(e["call"] == k for e in mine)
        assert [e["name"] for e in mine if e["kind"] == "default"].count("Invoke") == 1
        first += call["events"]
    assert first == len(events)
    for e in events:
        assert e["elapsed_us"] >= 0
        if e["kind"] in OP_KINDS:
            assert isinstance(e["node"], int) and e["node"] >= 0 and isinstance(e["subgraph"], int)
        else:
            assert e["kind"] == "default" and e["node"] is None and e["start_us"] > 0
    # top-level events of the profiler's clock come in order
    starts = [e["start_us"] for e in events if e["kind"] == "default"]
    assert starts == sorted(starts)


def test_generic_profile_records_the_measured_calls(harness, small_tflite, tmp_path):
    data, trace, profile = _generic(harness, small_tflite, tmp_path, "two", runs=2, warmup=2)
    _check_structure(data)
    assert (data["workload"], data["runs"], data["warmup"], data["calls_per_run"]) == ("generic", 2, 2, 4)
    assert data["accelerator"] == "cpu" and data["threads"] == 1
    assert [(c["run"], c["phase"]) for c in data["calls"]] == [(r, "forward") for r in (0, 1) for _ in range(4)]
    names = {e["name"] for e in data["events"]}
    # Linear + ReLU is one XNNPACK GEMM (ReLU fused); LiteRT's own steps around the interpreter
    assert "Fully Connected (NC, F32) GEMM" in names
    assert {"Invoke", "LiteRT::Run[buffer registration]", "LiteRT::Run[Buffer sync]"} <= names
    assert sum(e["elapsed_us"] for e in data["events"] if e["name"] == "Invoke") > 0
    # warm-up runs are not profiled (without them, the first call also allocates the tensors);
    # the events scale with the measured runs
    none, _, _ = _generic(harness, small_tflite, tmp_path, "nowarm", runs=2, warmup=0)
    _check_structure(none)
    assert [e["name"] for e in none["events"]].index("AllocateTensors") < none["calls"][0]["events"]
    assert [e["name"] for e in none["events"] if e["name"] != "AllocateTensors"] == [
        e["name"] for e in data["events"]]
    four, _, _ = _generic(harness, small_tflite, tmp_path, "four", runs=4, warmup=2)
    assert len(four["calls"]) == 16 and len(four["events"]) == 2 * len(data["events"])
    assert [e["name"] for e in four["events"]] == [e["name"] for e in data["events"]] * 2

    df = op_breakdown(profile, trace=trace)
    assert list(df.columns) == COLUMNS
    gemm = df[df["op"] == "Fully Connected (NC, F32) GEMM"].iloc[0]
    assert (gemm["category"], gemm["backend"], gemm["calls"], gemm["instances"]) == ("delegated_op", "XNNPACK", 8, 1)
    assert df.attrs["executes"] == 8 and 0 < df.attrs["execute_ms"] <= _measured_ms(trace)
    with pytest.raises(LiteRtProfileError, match="not the same run"):
        op_breakdown(profile, trace=tmp_path / "four.jsonl")
    with pytest.raises(LiteRtProfileError, match="no 'decode' calls"):
        op_breakdown(profile, phase="decode")


def test_llm_profile_labels_prefill_and_decode(harness, toy_lm_tflite, tmp_path):
    gen = 5
    data, trace, profile = _toy(harness, toy_lm_tflite, tmp_path, "two", runs=2, gen=gen)
    _check_structure(data)
    assert (data["workload"], data["calls_per_run"]) == ("llm", 1 + gen)
    assert [(c["run"], c["phase"], c["signature"]) for c in data["calls"]] == [
        (r, p, p) for r in (0, 1) for p in ["prefill"] + ["decode"] * gen]
    frame = events_frame(data)
    ops = frame[frame["kind"].isin(OP_KINDS)]
    # builtin kernels outside XNNPACK and XNNPACK's own op names, by node; one subgraph per signature
    assert {"EMBEDDING_LOOKUP", "CUMSUM"} <= set(ops[ops["kind"] == "operator"]["name"])
    assert "Fully Connected (NC, F32) GEMM" in set(ops[ops["kind"] == "delegate_profiled_operator"]["name"])
    assert ops.groupby("phase")["subgraph"].nunique().to_dict() == {"decode": 1, "prefill": 1}
    assert ops[ops["phase"] == "prefill"]["subgraph"].iloc[0] != ops[ops["phase"] == "decode"]["subgraph"].iloc[0]
    assert ops["elapsed_us"].sum() > 0
    one, _, _ = _toy(harness, toy_lm_tflite, tmp_path, "one", runs=1, gen=gen)
    assert 2 * len(one["events"]) == len(data["events"])

    measured = _measured_ms(trace)
    parts = []
    for phase, calls in (("prefill", 2), ("decode", 2 * gen)):
        df = op_breakdown(profile, phase=phase, trace=trace)
        assert df.attrs["executes"] == calls and df.attrs["phase"] == phase
        cats = set(df["category"])
        assert {"operator", "delegated_op", "delegate_call", "runtime"} <= cats
        xnn = df[df["category"] == "delegate_call"].iloc[0]
        assert xnn["op"] == "XNNPACK call" and xnn["calls"] == calls
        assert xnn["total_ms"] == pytest.approx(df[df["category"] == "delegated_op"]["total_ms"].sum())
        # operator + delegate + LiteRT runtime rows partition part of the execute time, never more
        share = df[df["category"] != "delegated_op"]["share"].sum()
        assert 0 < share <= 1 + 1e-9
        parts.append(df.attrs["execute_ms"])
    everything = op_breakdown(profile)
    assert everything.attrs["execute_ms"] == pytest.approx(sum(parts))
    assert everything.attrs["execute_ms"] <= measured


def test_breakdown_shares_of_a_compute_bound_model(harness, wide_tflite, tmp_path):
    """With real work in the ops, the rows account for nearly all of the execute time."""
    data, trace, profile = _generic(harness, wide_tflite, tmp_path, "wide", runs=2, iterations=3)
    _check_structure(data)
    df = op_breakdown(profile, phase="forward", trace=trace)
    assert 0.1 < df[df["category"] != "delegated_op"]["share"].sum() <= 1 + 1e-9
    # Per call, ops + LiteRT's runtime steps cover nearly all of the span the profiler saw
    # (the rest: the interpreter between ops). The median call, since a call the shared CI
    # machine preempts between events has a longer span with the same op times.
    frame = events_frame(data)
    covered = []
    for _, call in frame.groupby("call"):
        top = call[call["kind"] == "default"]
        span = (top["start_us"] + top["elapsed_us"]).max() - top["start_us"].min()
        covered.append(call[call["name"] != "Invoke"]["elapsed_us"].sum() / span)
    assert max(covered) <= 1 and sorted(covered)[len(covered) // 2] >= 0.8, covered
    cumsum = df[df["op"] == "CUMSUM"].iloc[0]
    assert (cumsum["category"], cumsum["calls"], cumsum["instances"]) == ("operator", 6, 1)
    gemms = df[df["op"].str.startswith("Fully Connected")]
    assert gemms["calls"].sum() == 12 and (gemms["total_ms"] > 0).all()
    assert df["total_ms"].ge(df["p50_ms"]).all() and df["mean_ms"].le(df["total_ms"]).all()
    assert 0 < df.attrs["execute_ms"] <= _measured_ms(trace)
    s = summary(df)
    assert s["executes"] == 6 and s["delegate_ms"] > s["operator_ms"] > 0
    assert s["overhead_ms"] >= 0


def test_litert_profile_is_a_usage_error_for_executorch(harness, tmp_path):
    for runtime in ([], ["--runtime", "executorch"]):
        trace = tmp_path / "t.jsonl"
        proc = harness.run(["--model", str(tmp_path / "model.pte"), "--trace", str(trace), *runtime,
                            "--vocab-size", "64", "--litert-profile", str(tmp_path / "p.json")])
        assert proc.returncode == 2
        assert "--litert-profile profiles LiteRT models only (--runtime tflite)" in proc.stderr
        assert not trace.exists() and not (tmp_path / "p.json").exists()
    assert "--litert-profile PATH" in harness.run(["--help"]).stdout


def test_unreadable_profiles_are_reported(tmp_path):
    with pytest.raises(LiteRtProfileError, match="no LiteRT profile"):
        op_breakdown(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something/1"}))
    with pytest.raises(LiteRtProfileError, match="is not a slmdeploy.litert-profile/1 file"):
        op_breakdown(tmp_path / "other.json")
