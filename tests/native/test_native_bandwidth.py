"""The native harness's memory-bandwidth probe: the same event as the Python harness's, outside the measured RSS."""

from __future__ import annotations

from slmdeploy.harness.trace import read_trace


def test_probe_event_is_in_the_trace_and_off_the_peak_rss(harness, tiny_fp32, tmp_path):
    proc = harness.run(harness.llm_args(tiny_fp32, tmp_path / "t.jsonl", threads=1, bandwidth_probe_mib=128))
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(tmp_path / "t.jsonl")
    assert trace.complete
    assert [e["type"] for e in trace.events[:2]] == ["header", "bandwidth"]  # measured before anything loads
    (probe,) = trace.of("bandwidth")
    assert set(probe) == {"type", "t_ns", "bytes", "passes", "threads", "best_gbps", "median_gbps", "method", "ns"}
    assert 0.1 < probe["best_gbps"] < 10_000 and probe["best_gbps"] >= probe["median_gbps"]
    assert probe["bytes"] >= 128 << 20 and 2 <= probe["passes"] <= 5 and probe["threads"] == 1
    # the buffer lived in a forked child: the harness's own peak RSS never held it
    peak = max(e["hwm_kib"] for e in trace.events if "hwm_kib" in e) * 1024
    assert peak < probe["bytes"]


def test_probe_threads_default_to_every_cpu_and_bad_sizes_are_usage_errors(harness, tiny_fp32, tmp_path):
    import os

    proc = harness.run(harness.llm_args(tiny_fp32, tmp_path / "t.jsonl", bandwidth_probe_mib=16, runs=1))
    assert proc.returncode == 0, proc.stderr
    (probe,) = read_trace(tmp_path / "t.jsonl").of("bandwidth")
    assert probe["threads"] == os.cpu_count()
    bad = harness.run(harness.llm_args(tiny_fp32, tmp_path / "u.jsonl", bandwidth_probe_mib=-1))
    assert bad.returncode == 2 and "--bandwidth-probe-mib must be >= 0" in bad.stderr
