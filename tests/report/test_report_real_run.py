"""The reports of a real bench on this host (llama-tiny, XNNPACK, with an ETDump op profile)."""

import pytest

from slmdeploy.bench import Workload, bench
from slmdeploy.harness.trace import read_trace
from slmdeploy.report import html_report, write_perfetto

from .browser import open_report
from .conftest import check_nesting, load, x_slices

SMALL = Workload(prompt_tokens=16, gen_tokens=8, warmup=1, runs=3, telemetry_interval_ms=50)


@pytest.fixture(scope="module")
def profiled_run(tiny_fp32, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return bench(tiny_fp32, "local", workload=SMALL, runs_dir=runs, profile=True, progress=False)


def test_perfetto_nests_the_etdump_ops_in_their_steps(profiled_run, tmp_path):
    out = write_perfetto(profiled_run.run_dir, tmp_path / "run.json")
    doc = load(out.path)
    slices = x_slices(doc)
    assert out.note is None and out.op_slices > 0
    steps = [s for s in slices if s["cat"] == "step"]
    prefills = [s for s in slices if s["cat"] == "prefill"]
    assert len(steps) == 4 * 8 and len(prefills) == 4  # (1 warm-up + 3 runs) x 8 steps
    assert check_nesting(slices) >= 4  # run > decode > step > op
    executes = sorted(steps + prefills, key=lambda s: s["ts"])
    ops = [s for s in slices if s["cat"] not in ("load", "run", "prefill", "decode", "step")]
    holders = set()
    for op in ops:  # every op lies inside the one execute (prefill or step) it ran in
        parent = [e for e in executes if e["ts"] - 1e-3 <= op["ts"] and op["ts"] + op["dur"] <= e["ts"] + e["dur"] + 1e-3]
        assert len(parent) == 1, op
        holders.add(parent[0]["ts"])
    assert len(holders) == len(executes)  # each execute has its ops
    calls = [op for op in ops if op["cat"] == "delegate_call"]
    delegated = [op for op in ops if op["cat"] == "delegated_op"]
    assert calls and delegated and all("call" in c["name"] for c in calls)  # XNNPACK calls and their ops
    for op in delegated[:200]:  # XNNPACK's own ops lie inside a delegate call
        assert any(c["ts"] - 1e-3 <= op["ts"] and op["ts"] + op["dur"] <= c["ts"] + c["dur"] + 1e-3 for c in calls)
    trace = read_trace(profiled_run.run_dir / "trace.jsonl")
    rss = [c for c in doc["traceEvents"] if c["ph"] == "C" and c["name"] == "memory MiB"]
    assert len(rss) == 1 + len(list(trace.iterations(include_warmup=True)))


def test_html_of_a_real_run_in_a_browser(profiled_run, tmp_path):
    report = html_report(profiled_run.run_dir, tmp_path / "real.html")
    assert report.charts == ["metrics", "timeline-0", "memory", "ops-0"]
    seen = open_report(report.path, tmp_path / "real.png")
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.requests == [report.path.resolve().as_uri()]
    assert all(c["drawn"] > 0 for c in seen.charts), seen.charts
    timeline = next(c for c in seen.charts if c["id"] == "timeline-0")
    assert timeline["marks"] >= 2  # warm-up and measured steps
    assert seen.summary_rows == 1 and seen.screenshot.stat().st_size > 50_000
