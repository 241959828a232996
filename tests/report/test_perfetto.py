"""--perfetto: a run as Chrome trace-event JSON, parsed back and checked slice by slice."""

import json
from collections import defaultdict

import pytest

from slmdeploy.errors import SlmdeployError
from slmdeploy.harness.trace import read_trace
from slmdeploy.report.perfetto import write_perfetto
from slmdeploy.report.timeline import layout

from .conftest import check_nesting, load, x_slices


def _first_run(root):
    return sorted(p for p in root.iterdir() if p.is_dir())[0]


def test_slices_counters_and_metadata_of_a_run(synthetic_runs, tmp_path):
    run_dir = _first_run(synthetic_runs)
    trace = read_trace(run_dir / "trace.jsonl")
    out = write_perfetto(run_dir, tmp_path / "run.json")
    doc = load(out.path)
    assert doc["displayTimeUnit"] == "ms"
    slices = x_slices(doc)
    by_cat = defaultdict(list)
    for s in slices:
        by_cat[s["cat"]].append(s)
    iterations = list(trace.iterations(include_warmup=True))
    decodes = [e for e in iterations if e["phase"] == "decode"]
    assert len(by_cat["load"]) == 1
    assert len(by_cat["prefill"]) == sum(e["phase"] == "prefill" for e in iterations) == 4  # 1 warm-up + 3 runs
    assert len(by_cat["decode"]) == len(decodes) == 4
    assert len(by_cat["step"]) == sum(len(e["step_ns"]) for e in decodes) == 32
    assert [s["name"] for s in by_cat["run"]] == ["warmup 0", "run 0", "run 1", "run 2"]
    assert sum(s["name"].endswith("(warmup)") for s in by_cat["step"]) == 8
    # durations are the harness's own numbers (µs, ns precision)
    assert [round(s["dur"] * 1000) for s in by_cat["step"][:8]] == decodes[0]["step_ns"]
    assert check_nesting(slices) == 3  # run > decode > step
    for step in by_cat["step"]:  # each step inside its decode slice
        parent = next(d for d in by_cat["decode"] if d["ts"] <= step["ts"] < d["ts"] + d["dur"])
        assert step["args"]["warmup"] == parent["args"]["warmup"]
    # slices end when their event was written (t_ns), relative to the first event
    tl = layout(trace)
    assert by_cat["load"][0]["ts"] + by_cat["load"][0]["dur"] == pytest.approx(
        (trace.of("load")[0]["t_ns"] - tl.origin_ns) / 1000, abs=1e-3)

    counters = [e for e in doc["traceEvents"] if e["ph"] == "C"]
    names = {c["name"] for c in counters}
    assert {"cpu0 MHz", "cpu7 MHz", "temperature °C", "memory MiB"} <= names
    cpu7 = [c for c in counters if c["name"] == "cpu7 MHz"]
    assert len(cpu7) == len(trace.of("telemetry")) and {"cur", "cap"} <= set(cpu7[0]["args"])
    assert cpu7[0]["args"]["cap"] == trace.of("telemetry")[0]["cpu_max_khz"]["cpu7"] / 1000
    memory = [c for c in counters if c["name"] == "memory MiB"]
    assert len(memory) == 1 + len(iterations)  # after load and after each iteration
    for name in names:  # each counter track moves forward in time
        ts = [c["ts"] for c in counters if c["name"] == name]
        assert ts == sorted(ts) and ts[0] >= 0
    meta = {e["name"]: e for e in doc["traceEvents"] if e["ph"] == "M"}
    assert "on Pixel 8" in meta["process_name"]["args"]["name"] and meta["thread_name"]["args"]["name"] == "harness"
    assert out.slices == len(slices) and out.op_slices == 0 and out.counters == len(counters)


def test_events_without_timestamps_are_laid_out_one_after_another(synthetic_runs, tmp_path):
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    src = _first_run(synthetic_runs)
    (run_dir / "run.json").write_text((src / "run.json").read_text())
    events = [json.loads(line) for line in (src / "trace.jsonl").read_text().splitlines()]
    for e in events:
        e.pop("t_ns", None)
    (run_dir / "trace.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    doc = load(write_perfetto(run_dir, tmp_path / "old.json").path)
    slices = [s for s in x_slices(doc) if s["cat"] in ("load", "prefill", "decode")]
    for a, b in zip(slices, slices[1:]):
        assert b["ts"] == pytest.approx(a["ts"] + a["dur"], abs=1e-3)  # back to back
    assert slices[0]["ts"] == 0
    assert "sequentially" in doc["metadata"]["timestamps"]
    assert check_nesting(x_slices(doc)) == 3


def test_litert_profile_ops_nest_inside_their_steps(synthetic_runs, tmp_path):
    run_dir = tmp_path / "litert"
    run_dir.mkdir()
    src = _first_run(synthetic_runs)
    for name in ("run.json", "trace.jsonl"):
        (run_dir / name).write_text((src / name).read_text())
    trace = read_trace(run_dir / "trace.jsonl")
    measured = [e for e in trace.iterations() for _ in range(1 if e["phase"] == "prefill" else len(e["step_ns"]))]
    calls, events = [], []
    for i, it in enumerate(measured):
        base = 1_000_000 * i
        mine = [("Invoke", "default", base + 5, 400), ("FULLY_CONNECTED", "operator", base + 10, 150),
                ("Fully Connected (NC, F32) GEMM", "delegate_profiled_operator", base + 170, 200),
                ("LiteRT::Run[Buffer sync]", "default", base + 900, 10**9)]  # longer than the step: clipped
        calls.append({"call": i, "run": it["run"], "phase": it["phase"], "signature": it["phase"],
                      "first_event": len(events), "events": len(mine)})
        events += [{"name": n, "kind": k, "source": "litert", "node": None, "subgraph": None, "call": i,
                    "start_us": s, "elapsed_us": d} for n, k, s, d in mine]
    (run_dir / "litert_profile.json").write_text(json.dumps(
        {"format": "slmdeploy.litert-profile/1", "calls": calls, "events": events}))
    out = write_perfetto(run_dir, tmp_path / "litert.json")
    doc = load(out.path)
    ops = [s for s in x_slices(doc) if s["cat"] in ("default", "operator", "delegate_profiled_operator")]
    assert out.op_slices == len(ops) == 4 * len(measured) and out.note is None
    assert check_nesting(x_slices(doc)) == 5  # run > decode > step > Invoke > FULLY_CONNECTED
    steps = [s for s in x_slices(doc) if s["cat"] == "step" and not s["args"]["warmup"]]
    first_fc = next(o for o in ops if o["name"] == "FULLY_CONNECTED" and o["ts"] >= steps[0]["ts"])
    assert first_fc["ts"] - steps[0]["ts"] == pytest.approx(0.005 * 1000, abs=1e-3)  # 5 µs after Invoke began

    calls.pop()  # a profile of another run: ops are left out, with a note
    (run_dir / "litert_profile.json").write_text(json.dumps(
        {"format": "slmdeploy.litert-profile/1", "calls": calls, "events": events}))
    out = write_perfetto(run_dir, tmp_path / "litert2.json")
    assert out.op_slices == 0 and "ops not nested" in out.note


def test_a_run_without_a_trace_is_refused_in_one_line(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(SlmdeployError, match="no trace.jsonl"):
        write_perfetto(tmp_path, tmp_path / "x.json")


def test_a_forward_workload_has_one_slice_per_invocation(tmp_path):
    run_dir = tmp_path / "fwd"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "fwd", "model": "mobilenet", "device": "local"}))
    events = [{"type": "header", "t_ns": 0, "protocol": "slmdeploy.trace/1"},
              {"type": "load", "t_ns": 2_000_000, "ns": 1_500_000, "rss_kib": 10_240},
              {"type": "iteration", "t_ns": 3_000_000, "run": 0, "warmup": True, "phase": "forward",
               "tokens": 0, "ns": 600_000, "step_ns": [300_000, 300_000], "rss_kib": 11_264},
              {"type": "iteration", "t_ns": 4_000_000, "run": 0, "warmup": False, "phase": "forward",
               "tokens": 0, "ns": 500_000, "step_ns": [200_000, 300_000], "rss_kib": 11_264},
              "not json: a torn line is skipped",
              {"type": "footer", "t_ns": 4_100_000, "status": "complete"}]
    (run_dir / "trace.jsonl").write_text("".join((json.dumps(e) if isinstance(e, dict) else e) + "\n" for e in events))
    doc = load(write_perfetto(run_dir, tmp_path / "fwd.json").path)
    slices = {(s["cat"], s["name"]): s for s in x_slices(doc)}
    assert [name for cat, name in slices if cat == "step"] == ["invoke 0 (warmup)", "invoke 1 (warmup)", "invoke 0",
                                                                 "invoke 1"]
    assert slices[("load", "load")]["ts"] == 500.0  # ends at t_ns 2 ms, began 1.5 ms earlier; 0 = the header
    assert slices[("forward", "forward (run 0)")]["ts"] == 3500.0 and slices[("step", "invoke 1")]["ts"] == 3700.0
    assert check_nesting(x_slices(doc)) == 3
