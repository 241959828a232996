"""Roofline: the bandwidth probe, bytes per decode token, the fraction of bandwidth reached, the per-device store."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from slmdeploy.analysis.records import record
from slmdeploy.analysis.roofline import (
    BASIS_FULL,
    KVFacts,
    bandwidth_fraction,
    decode_bytes_per_token,
    kv_facts,
    roofline,
)
from slmdeploy.analysis.store import read_table, store_run
from slmdeploy.devices import bandwidth_store
from slmdeploy.harness.protocol import HarnessArgs
from slmdeploy.harness.trace import Trace, read_trace

TINY = KVFacts(layers=2, kv_heads=2, head_dim=8, dtype="float32")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _trace(bandwidth_gbps=None, start_pos=16, tokens=8, step_ns=1_000_000, runs=3):
    events = [{"type": "header", "protocol": "slmdeploy.trace/1", "harness": {"name": "python"},
               "model": {"size": 999}}]
    if bandwidth_gbps is not None:
        events.append({"type": "bandwidth", "bytes": 1 << 27, "passes": 5, "threads": 2, "best_gbps": bandwidth_gbps})
    events.append({"type": "load", "ns": 1, "threads": 2})
    for run in range(runs):
        events.append({"type": "iteration", "run": run, "warmup": False, "phase": "prefill", "tokens": start_pos,
                       "start_pos": 0, "ns": 5_000_000})
        events.append({"type": "iteration", "run": run, "warmup": False, "phase": "decode", "tokens": tokens,
                       "start_pos": start_pos, "ns": tokens * step_ns, "step_ns": [step_ns] * tokens})
    events.append({"type": "footer", "status": "complete", "runs": runs})
    return Trace(events=events)


def test_kv_bytes_per_token_match_a_hand_computation():
    # 2 (K and V) x 2 layers x 2 kv heads x 8 head_dim x 4 bytes = 256 bytes per cached position
    assert TINY.bytes_per_position() == 256
    # decode steps at positions 16..23 read 16, 17, ..., 23 cached positions: 156 / 8 = 19.5 on average
    total, kv = decode_bytes_per_token(10_000, 256, start_pos=16, tokens=8)
    assert kv == 256 * sum(range(16, 24)) / 8 == 4992
    assert total == 10_000 + 4992
    assert KVFacts(layers=2, kv_heads=2, head_dim=8, dtype="float16").bytes_per_position() == 128


def test_fraction_of_bandwidth():
    # 6 MB per token at 500 tok/s is 3 GB/s: a quarter of 12 GB/s
    assert bandwidth_fraction(6e6, 500, 12.0) == pytest.approx(0.25)
    assert bandwidth_fraction(6e6, 500, None) is None and bandwidth_fraction(6e6, None, 12.0) is None


def test_run_columns_from_the_trace_probe(cache):
    row = roofline(_trace(bandwidth_gbps=8.0), {"model_size": 10_000, "device": "local"}, TINY, decode_tps=1000.0)
    assert row["bandwidth_gbps"] == 8.0 and row["bandwidth_source"] == "trace" and row["bandwidth_threads"] == 2
    assert row["decode_weight_bytes"] == 10_000 and row["decode_kv_bytes_per_token"] == 4992
    assert row["decode_bytes_per_token"] == 14_992 and row["decode_bytes_basis"] == BASIS_FULL
    assert row["decode_achieved_gbps"] == pytest.approx(14_992 * 1000 / 1e9)
    assert row["decode_bandwidth_fraction"] == pytest.approx(14_992 * 1000 / 8e9)


def test_missing_architecture_facts_give_weights_only_and_say_so(cache):
    manifest = {"model": {"id": "custom", "architecture": {"layers": 2}}, "llm": {"convention": "slmdeploy.llm/1"}}
    facts = kv_facts(manifest)
    assert facts.dtype == "float32" and facts.bytes_per_position() is None  # the convention's cache dtype
    row = roofline(_trace(bandwidth_gbps=8.0), {"model_size": 10_000}, facts, decode_tps=1000.0)
    assert row["decode_bytes_per_token"] == 10_000 and row["decode_kv_bytes_per_token"] is None
    assert row["decode_bytes_basis"] == "weights-only: no kv_heads, head_dim"
    assert row["decode_bandwidth_fraction"] == pytest.approx(10_000 * 1000 / 8e9)
    # an unknown cache dtype is a missing fact too, never a guess
    odd = KVFacts(layers=2, kv_heads=2, head_dim=8, dtype="q4_k")
    assert roofline(_trace(), {"model_size": 10}, odd, 1.0)["decode_bytes_basis"] == \
        "weights-only: no size of kv dtype 'q4_k'"


def test_llamacpp_runs_count_the_kv_type_of_their_context(cache):
    trace = _trace(bandwidth_gbps=8.0)
    trace.events[2]["llamacpp"] = {"type_k": "f16", "type_v": "f16", "model_bytes": 9_000}
    row = roofline(trace, {"model_size": 10_000}, TINY, 1000.0)  # TINY says float32; the context says f16
    assert row["decode_weight_bytes"] == 9_000 and row["decode_kv_bytes_per_token"] == 4992 / 2
    trace.events[2]["llamacpp"] = {"type_k": "q8_0", "type_v": "q8_0"}
    trace._by_type.clear()
    assert roofline(trace, {"model_size": 10_000}, TINY, 1000.0)["decode_bytes_basis"] == \
        "weights-only: no size of kv dtype 'q8_0'"


def test_no_probe_uses_the_devices_last_bandwidth(cache):
    meta = {"model_size": 10_000, "device": "ssh:pi@Board.local"}
    assert roofline(_trace(), meta, TINY, 1000.0)["bandwidth_gbps"] is None  # never measured: no fraction
    bandwidth_store.remember("ssh:pi@board.local:22", {"best_gbps": 4.0, "bytes": 1 << 27, "threads": 4},
                             harness="native", run_id="r1")
    row = roofline(_trace(), meta, TINY, 1000.0)  # the same board under another spelling
    assert row["bandwidth_gbps"] == 4.0 and row["bandwidth_source"] == "device" and row["bandwidth_threads"] == 4
    assert row["decode_bandwidth_fraction"] == pytest.approx(14_992 * 1000 / 4e9)
    saved = json.loads(bandwidth_store.device_file("ssh:pi@board.local").read_text())
    assert saved["identity"] == "ssh:pi@board.local:22" and saved["bandwidth"]["run_id"] == "r1"
    bandwidth_store.device_file("ssh:pi@board.local").write_text("{not json")
    assert bandwidth_store.last("ssh:pi@board.local") is None  # a torn cache file is no measurement


def test_record_and_database_carry_the_columns(cache, tmp_path):
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"run_id": "run-1", "status": "complete", "model_size": 10_000,
                                                  "started_at": "2026-12-02T11:00:00+00:00",
                                                  "device": "local", "workload": {}}))
    (run_dir / "manifest.json").write_text(json.dumps(
        {"model": {"architecture": {"layers": 2, "kv_heads": 2, "head_dim": 8}},
         "llm": {"convention": "slmdeploy.llm/1", "cache_dtype": "float32"}}))
    (run_dir / "trace.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _trace(bandwidth_gbps=8.0).events))
    row = record(run_dir)
    assert row["decode_tps"] == pytest.approx(1000.0)  # 8 tokens in 8 ms
    assert row["decode_bytes_per_token"] == 14_992 and row["decode_bandwidth_fraction"] == pytest.approx(14_992 / 8e6)
    db = tmp_path / "results.duckdb"
    store_run(run_dir, db)
    stored = read_table(db).iloc[0]
    assert stored.decode_bytes_per_token == 14_992 and stored.bandwidth_gbps == 8.0
    assert stored.decode_bytes_basis == BASIS_FULL


def test_python_probe_reports_a_plausible_bandwidth(tmp_path):
    """The probe runs before the model loads: a missing model still leaves header, bandwidth, error."""
    args = HarnessArgs(model=str(tmp_path / "missing.pte"), trace=str(tmp_path / "t.jsonl"), vocab_size=16,
                       bandwidth_probe_mib=32, telemetry_interval_ms=0)
    proc = subprocess.run([sys.executable, "-m", "slmdeploy.harness.python_harness", *args.argv()],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    trace = read_trace(tmp_path / "t.jsonl")
    assert [e["type"] for e in trace.events] == ["header", "bandwidth", "error"]
    (probe,) = trace.of("bandwidth")
    assert 0.1 < probe["best_gbps"] < 10_000 and probe["best_gbps"] >= probe["median_gbps"]
    assert probe["bytes"] >= 32 << 20 and 2 <= probe["passes"] <= 5 and probe["threads"] >= 1
    assert probe["t_ns"] >= trace.header["t_ns"]


def test_a_probe_that_fails_or_dies_is_reported_not_raised(monkeypatch):
    import os
    import signal

    from slmdeploy.harness import bandwidth

    def broken(mib, threads):
        raise MemoryError("no room for the buffer")

    monkeypatch.setattr(bandwidth, "measure", broken)  # the forked child inherits it
    failed = bandwidth.probe(16, 1)
    assert failed["error"] == "MemoryError: no room for the buffer" and "best_gbps" not in failed
    monkeypatch.setattr(bandwidth, "measure", lambda mib, threads: os.kill(os.getpid(), signal.SIGKILL))
    killed = bandwidth.probe(16, 1)  # as the OOM killer would
    assert "ended without a result (exit status -9" in killed["error"] and killed["ns"] > 0


def test_buffer_is_four_times_the_largest_cache(tmp_path, monkeypatch):
    from slmdeploy.harness import bandwidth

    for cpu, sizes in (("cpu0", ("32K", "512K")), ("cpu1", ("96M",))):
        for i, size in enumerate(sizes):
            (tmp_path / f"devices/system/cpu/{cpu}/cache/index{i}").mkdir(parents=True)
            (tmp_path / f"devices/system/cpu/{cpu}/cache/index{i}/size").write_text(size + "\n")
    assert bandwidth.largest_cache_bytes(str(tmp_path)) == 96 << 20
    monkeypatch.setattr(bandwidth, "largest_cache_bytes", lambda: 96 << 20)
    monkeypatch.setattr(bandwidth, "_available_bytes", lambda: 64 << 30)
    assert bandwidth.buffer_bytes(128) == 384 << 20
    monkeypatch.setattr(bandwidth, "_available_bytes", lambda: 1 << 30)  # a small board: a quarter of what is free
    assert bandwidth.buffer_bytes(128) == 256 << 20


def test_probe_is_off_unless_asked_and_its_size_is_checked(tmp_path):
    assert "--bandwidth-probe-mib" not in HarnessArgs(model="m", trace="t").argv()  # older harnesses still run
    args = HarnessArgs(model="m", trace=str(tmp_path / "t.jsonl"), vocab_size=16, bandwidth_probe_mib=-1)
    proc = subprocess.run([sys.executable, "-m", "slmdeploy.harness.python_harness", *args.argv()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--bandwidth-probe-mib must be >= 0" in proc.stderr


@pytest.fixture(scope="module")
def probed_run(tiny_fp32, tmp_path_factory):
    from slmdeploy.bench import Workload, bench

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLMDEPLOY_CACHE", str(cache))
        runs = tmp_path_factory.mktemp("runs")
        workload = Workload(prompt_tokens=16, gen_tokens=8, warmup=1, runs=2, telemetry_interval_ms=0)
        result = bench(tiny_fp32, "local", workload=workload, runs_dir=runs, progress=False)
        yield result, runs, cache


def test_bench_reports_bytes_per_token_and_keeps_the_bandwidth(probed_run, tiny_fp32):
    result, runs, cache = probed_run
    trace = read_trace(result.run_dir / "trace.jsonl")
    (probe,) = trace.of("bandwidth")  # on by default for an LLM artifact
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLMDEPLOY_CACHE", str(cache))
        assert bandwidth_store.last("local")["best_gbps"] == probe["best_gbps"]
        out = CliRunner().invoke(_cli(), ["report", str(runs), "--json"])
        text = CliRunner().invoke(_cli(), ["report", str(runs)], terminal_width=250)
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)["runs"]
    # llama-tiny: 4 layers, 2 kv heads, head_dim 256 / 8 = 32, float32 cache -> 2048 bytes per position;
    # decode at positions 16..23 reads 19.5 of them on average
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["kv_cache"] == {"layers": 4, "kv_heads": 2, "head_dim": 32, "dtype": "float32"}
    weights = tiny_fp32.manifest.model_file.size
    assert row["decode_weight_bytes"] == weights and row["decode_kv_bytes_per_token"] == 2048 * 19.5
    assert row["decode_bytes_per_token"] == weights + 2048 * 19.5
    assert row["bandwidth_gbps"] == probe["best_gbps"] and row["bandwidth_source"] == "trace"
    assert row["decode_bandwidth_fraction"] == pytest.approx(
        row["decode_bytes_per_token"] * row["decode_tps"] / (probe["best_gbps"] * 1e9))
    assert 0 < row["decode_bandwidth_fraction"] < 5  # a tiny model partly runs from cache: above 1 is possible
    assert text.exit_code == 0 and "roofline" in text.output and "weights+kv" in text.output


def test_devices_shows_the_last_measured_bandwidth(cache):
    bandwidth_store.remember("local", {"best_gbps": 12.5, "bytes": 1 << 27, "passes": 5, "threads": 2})
    out = CliRunner().invoke(_cli(), ["devices", "--device", "local", "--json"])
    assert out.exit_code == 0, out.output
    (info,) = [i for i in json.loads(out.output) if i["spec"] == "local"]
    assert info["bandwidth"]["best_gbps"] == 12.5 and info["bandwidth"]["threads"] == 2


def _cli():
    from slmdeploy.cli.main import cli

    return cli
