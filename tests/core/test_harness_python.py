"""The Python harness implements protocol v1: arguments, trace schema, exit codes, crash safety."""

import signal
import subprocess
import sys
import time

import pytest

from slmdeploy.harness.protocol import HarnessArgs
from slmdeploy.harness.trace import read_trace


def _args(artifact, trace, **overrides) -> list[str]:
    m = artifact.manifest
    args = HarnessArgs(
        model=str(artifact.model_file), trace=str(trace), prompt_tokens=16, gen_tokens=8, warmup=1, runs=3,
        max_seq_len=m.llm.max_seq_len, vocab_size=m.llm.vocab_size, telemetry_interval_ms=50,
    )
    for key, value in overrides.items():
        setattr(args, key, value)
    return [sys.executable, "-m", "slmdeploy.harness.python_harness", *args.argv()]


def test_complete_trace_follows_the_schema(tiny_fp32, tmp_path):
    trace_path = tmp_path / "trace.jsonl"
    proc = subprocess.run(_args(tiny_fp32, trace_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(trace_path)
    assert trace.complete and trace.torn_lines == 0
    assert trace.events[0]["type"] == "header" and trace.events[-1]["type"] == "footer"
    h = trace.header
    assert h["protocol"] == "slmdeploy.trace/1" and h["harness"]["name"] == "python"
    assert h["runtime"]["name"] == "executorch" and h["workload"]["prompt_tokens"] == 16
    (load,) = trace.of("load")
    assert load["ns"] > 0 and load["rss_kib"] > 0 and load["threads"] >= 1
    its = trace.of("iteration")
    assert [(e["warmup"], e["run"], e["phase"]) for e in its] == [
        (w, r, p) for w, r in [(True, 0), (False, 0), (False, 1), (False, 2)] for p in ("prefill", "decode")
    ]
    for e in its:
        assert e["ns"] > 0 and e["hwm_kib"] >= e["rss_kib"] > 0
        if e["phase"] == "decode":
            assert e["tokens"] == 8 and len(e["step_ns"]) == 8 and sum(e["step_ns"]) == e["ns"]
            assert e["start_pos"] == 16
        else:
            assert e["tokens"] == 16 and e["start_pos"] == 0
    assert trace.footer["runs"] == 3
    assert all(isinstance(t["cpu_khz"], dict) for t in trace.of("telemetry"))
    ts = [e["t_ns"] for e in trace.events if e["type"] != "telemetry"]
    assert ts == sorted(ts)


def test_a_run_shorter_than_the_interval_still_has_its_baseline_sample(tiny_fp32, tmp_path):
    trace_path = tmp_path / "trace.jsonl"
    proc = subprocess.run(_args(tiny_fp32, trace_path, telemetry_interval_ms=600_000, runs=1, warmup=0),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    events = read_trace(trace_path).events
    assert [e["type"] for e in events[:3]] == ["header", "telemetry", "load"]
    assert sum(e["type"] == "telemetry" for e in events) == 1


def test_workload_longer_than_the_program_is_a_usage_error(tiny_fp32, tmp_path):
    proc = subprocess.run(_args(tiny_fp32, tmp_path / "t.jsonl", prompt_tokens=250, gen_tokens=10),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "exceed the program's max sequence length 256" in proc.stderr


def test_missing_model_is_a_load_failure(tiny_fp32, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = subprocess.run(_args(tiny_fp32, trace_path, model=str(tmp_path / "nope.pte")),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    trace = read_trace(trace_path)
    assert not trace.complete and trace.of("error")[0]["phase"] == "load"


def _start_long_run(artifact, trace_path):
    proc = subprocess.Popen(_args(artifact, trace_path, runs=10_000, gen_tokens=32), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if trace_path.exists() and len(read_trace(trace_path).of("iteration")) >= 5:
            return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the harness produced no iterations in 120 s")


def test_sigterm_keeps_finished_iterations_and_marks_the_trace_incomplete(tiny_fp32, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = _start_long_run(tiny_fp32, trace_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    trace = read_trace(trace_path)
    assert not trace.complete and "interrupted" in trace.error
    assert len(trace.of("iteration")) >= 5  # every event written before the signal is kept


def test_a_killed_harness_leaves_a_readable_incomplete_trace(tiny_fp32, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = _start_long_run(tiny_fp32, trace_path)
    proc.kill()
    proc.wait(timeout=60)
    trace = read_trace(trace_path)
    assert not trace.complete and trace.error is None
    assert trace.header["protocol"] == "slmdeploy.trace/1"
    assert len(trace.of("iteration")) >= 5 and all(e["ns"] > 0 for e in trace.of("iteration"))
