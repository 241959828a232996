"""The native harness implements protocol v1 like the Python one: arguments, trace, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from slmdeploy.analysis.metrics import summarize
from slmdeploy.harness import telemetry
from slmdeploy.harness.protocol import HarnessArgs
from slmdeploy.harness.trace import read_trace


MAPS = ("thermal_mc", "cpu_khz", "cpu_max_khz", "battery")


def _shape(value):
    """The key structure of an event: nested dicts by key, everything else by JSON type."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in MAPS} | {
            k: "map" for k in MAPS if k in value
        }
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _by_kind(trace):
    out = {}
    for event in trace.events:
        kind = event["type"] if event["type"] != "iteration" else f"iteration/{event['phase']}"
        out.setdefault(kind, _shape(event))
    return out


def test_trace_has_the_python_harness_schema(harness, tiny_fp32, tmp_path):
    native_args = harness.llm_args(tiny_fp32, tmp_path / "native.jsonl", run_id="r-1", artifact_sha256="ab" * 32)
    python_args = harness.llm_args(tiny_fp32, tmp_path / "python.jsonl", run_id="r-1", artifact_sha256="ab" * 32)
    native = harness.run(native_args)
    assert native.returncode == 0, native.stderr
    python = harness.run_python(python_args)
    assert python.returncode == 0, python.stderr

    n, p = read_trace(tmp_path / "native.jsonl"), read_trace(tmp_path / "python.jsonl")
    assert n.complete and n.torn_lines == 0
    assert _by_kind(n) == _by_kind(p)  # same events, same keys, same value types
    assert n.header["harness"]["name"] == "native" and p.header["harness"]["name"] == "python"
    for key in ("protocol", "workload", "run_id", "model"):
        expected = {**p.header[key], "path": n.header["model"]["path"]} if key == "model" else p.header[key]
        assert n.header[key] == expected, key
    assert n.header["runtime"] == p.header["runtime"]  # the same ExecuTorch build: "1.5.1+cpu"
    assert n.header["host"] == p.header["host"]
    assert [(e["warmup"], e["run"], e["phase"], e["tokens"]) for e in n.of("iteration")] == [
        (e["warmup"], e["run"], e["phase"], e["tokens"]) for e in p.of("iteration")
    ]
    for e in n.of("iteration"):
        assert e["ns"] > 0 and e["hwm_kib"] >= e["rss_kib"] > 0 and e["pss_kib"] > 0
        if e["phase"] == "decode":
            assert len(e["step_ns"]) == 8 and sum(e["step_ns"]) == e["ns"] and e["start_pos"] == 16
    ts = [e["t_ns"] for e in n.events if e["type"] != "telemetry"]
    assert ts == sorted(ts) and n.footer["wall_ns"] >= ts[-2]
    assert n.footer["runs"] == 3 == p.footer["runs"]
    # The analysis reads it like any other trace.
    row = summarize(n)
    assert row["complete"] and row["harness"] == "native" and row["measured_runs"] == 3
    assert row["decode_tps"] > 0 and row["prefill_tps"] > 0 and row["threads"] >= 1
    # A native process does not carry an interpreter: far less memory than the Python harness.
    assert row["peak_rss_mib"] < summarize(p)["peak_rss_mib"]


def test_8da4w_program_runs_with_the_quantized_kernels_linked(harness, tiny_8da4w, tmp_path):
    proc = harness.run(harness.llm_args(tiny_8da4w, tmp_path / "t.jsonl", threads=1))
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(tmp_path / "t.jsonl")
    assert trace.complete
    assert trace.of("load")[0]["threads"] == 1
    assert len(list(trace.iterations())) == 6
    assert trace.header["model"]["size"] == tiny_8da4w.model_file.stat().st_size


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"prompt_tokens": 250, "gen_tokens": 10}, "exceed the program's max sequence length 256"),
        ({"vocab_size": 0}, "--vocab-size is required"),
        ({"runs": 0}, "--runs must be >= 1"),
        ({"workload": "chat"}, "--workload must be llm or generic"),
        ({"runtime": "tflite", "etdump": "x.etdp"}, "--etdump profiles ExecuTorch programs only"),
    ],
)
def test_usage_errors_exit_2_before_writing_a_trace(harness, tiny_fp32, tmp_path, overrides, message):
    trace_path = tmp_path / "t.jsonl"
    proc = harness.run(harness.llm_args(tiny_fp32, trace_path, **overrides))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not trace_path.exists()


def test_unknown_or_malformed_arguments_are_usage_errors(harness, tiny_fp32, tmp_path):
    base = harness.llm_args(tiny_fp32, tmp_path / "t.jsonl").argv()
    for extra, message in ([["--prompt", "64"], "unrecognized argument: --prompt"],
                           [["--runs", "five"], "invalid int value: 'five'"],
                           [["--seed"], "expected one argument"]):
        proc = harness.run(base + extra)
        assert proc.returncode == 2, extra
        assert message in proc.stderr
    assert harness.run(["--model", "m.pte"]).returncode == 2  # --trace is required
    helped = harness.run(["--help"])
    assert helped.returncode == 0 and "--prefill-method" in helped.stdout and "example:" in helped.stdout


def test_missing_model_is_a_load_failure_with_a_header(harness, tiny_fp32, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = harness.run(harness.llm_args(tiny_fp32, trace_path, model=str(tmp_path / "nope.pte")))
    assert proc.returncode == 3
    trace = read_trace(trace_path)
    assert [e["type"] for e in trace.events if e["type"] != "telemetry"] == ["header", "error"]
    assert trace.header["model"]["size"] is None  # as the Python harness writes it
    assert trace.of("error")[0]["phase"] == "load" and "no such file" in trace.error
    assert not trace.complete


def test_missing_method_and_corrupt_program_are_load_failures(harness, tiny_fp32, tmp_path):
    proc = harness.run(harness.llm_args(tiny_fp32, tmp_path / "a.jsonl", decode_method="decode"))
    assert proc.returncode == 3
    assert read_trace(tmp_path / "a.jsonl").error.endswith("the program has no method 'decode'")
    junk = tmp_path / "junk.pte"
    junk.write_bytes(b"not a program" * 100)
    proc = harness.run(harness.llm_args(tiny_fp32, tmp_path / "b.jsonl", model=str(junk)))
    assert proc.returncode == 3
    assert "the program does not load" in read_trace(tmp_path / "b.jsonl").error


def _start_long_run(harness, artifact, trace_path):
    proc = subprocess.Popen(harness.argv(harness.llm_args(artifact, trace_path, runs=100_000, gen_tokens=32)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if trace_path.exists() and len(read_trace(trace_path).of("iteration")) >= 5:
            return proc
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the native harness wrote no iterations in 60 s")


def test_sigterm_keeps_finished_iterations_and_exits_130(harness, tiny_fp32, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = _start_long_run(harness, tiny_fp32, trace_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    trace = read_trace(trace_path)
    assert not trace.complete and trace.torn_lines == 0
    error = trace.of("error")
    assert len(error) == 1 and error[0]["phase"] == "run" and error[0]["message"] == "interrupted (signal 15)"
    assert trace.events[-1]["type"] == "error"
    its = trace.of("iteration")
    assert len(its) >= 5 and all(e["ns"] > 0 for e in its)
    # only whole iterations: every decode has its 32 steps
    assert all(len(e["step_ns"]) == 32 for e in its if e["phase"] == "decode")


def test_sigkill_leaves_a_readable_incomplete_trace(harness, tiny_fp32, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = _start_long_run(harness, tiny_fp32, trace_path)
    proc.kill()
    proc.wait(timeout=60)
    trace = read_trace(trace_path)
    assert not trace.complete and trace.error is None and trace.torn_lines == 0
    assert len(trace.of("iteration")) >= 5


def test_generic_workload_on_a_small_pte_matches_the_python_schema(harness, small_module_pte, tmp_path):
    common = ["--workload", "generic", "--iterations", "7", "--runs", "2", "--warmup", "1", "--seed", "3",
              "--telemetry-interval-ms", "0", "--model", str(small_module_pte["pte"])]
    proc = harness.run([*common, "--trace", str(tmp_path / "n.jsonl")])
    assert proc.returncode == 0, proc.stderr

    py = harness.run_python(HarnessArgs(model=str(small_module_pte["pte"]), trace=str(tmp_path / "p.jsonl"),
                                        workload="generic", iterations=7, runs=2, seed=3, telemetry_interval_ms=0))
    assert py.returncode == 0, py.stderr
    n, p = read_trace(tmp_path / "n.jsonl"), read_trace(tmp_path / "p.jsonl")
    assert _by_kind(n) == _by_kind(p)
    assert not n.of("telemetry")  # interval 0 disables the sampler
    its = n.of("iteration")
    assert [(e["warmup"], e["run"]) for e in its] == [(True, 0), (False, 0), (False, 1)]
    for e in its:
        assert e["phase"] == "forward" and e["tokens"] == 0 and "start_pos" not in e
        assert len(e["step_ns"]) == 7 and sum(e["step_ns"]) == e["ns"] and min(e["step_ns"]) > 0
    assert summarize(n)["forward_ms"] > 0


def test_generic_workload_on_a_tflite_model(harness, small_tflite, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = harness.run(["--model", str(small_tflite), "--trace", str(trace_path), "--runtime", "tflite",
                        "--workload", "generic", "--iterations", "5", "--runs", "2", "--threads", "1"])
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(trace_path)
    assert trace.complete
    from importlib import metadata

    assert trace.header["runtime"] == {"name": "tflite", "version": metadata.version("ai-edge-litert")}
    assert trace.of("load")[0]["threads"] == 1
    its = list(trace.iterations())
    assert len(its) == 2 and all(len(e["step_ns"]) == 5 and e["phase"] == "forward" for e in its)
    # a signature that is not there is a load failure naming the ones that are
    proc = harness.run(["--model", str(small_tflite), "--trace", str(tmp_path / "b.jsonl"), "--runtime", "tflite",
                        "--workload", "generic", "--method", "encode"])
    assert proc.returncode == 3
    assert "no signature 'encode' (it has: serving_default)" in read_trace(tmp_path / "b.jsonl").error


def test_telemetry_fields_match_the_python_sampler(harness, small_module_pte, tmp_path):
    """The same fake sysfs read by both samplers gives the same maps (the Python reader is the reference)."""
    sys_root = tmp_path / "sys"
    zones = {"thermal_zone0": ("cpu-big", "41000"), "thermal_zone1": ("battery", "30500"),
             "thermal_zone10": ("skin", "29000"), "thermal_zone2": ("cpu-big", "43000"),
             "thermal_zone3": ("gpu", "n/a")}
    for zone, (kind, temp) in zones.items():
        (sys_root / "class/thermal" / zone).mkdir(parents=True)
        (sys_root / "class/thermal" / zone / "type").write_text(kind + "\n")
        (sys_root / "class/thermal" / zone / "temp").write_text(temp + "\n")
    for cpu, khz in (("cpu0", 1704000), ("cpu10", 2000000), ("cpu2", 2912000)):
        (sys_root / "devices/system/cpu" / cpu / "cpufreq").mkdir(parents=True)
        (sys_root / "devices/system/cpu" / cpu / "cpufreq/scaling_cur_freq").write_text(f"{khz}\n")
        if cpu != "cpu10":  # a core whose cap cannot be read: absent from cpu_max_khz, not zero
            (sys_root / "devices/system/cpu" / cpu / "cpufreq/scaling_max_freq").write_text(f"{khz + 100}\n")
    (sys_root / "devices/system/cpu/cpufreq").mkdir(parents=True)
    battery = sys_root / "class/power_supply/battery"
    battery.mkdir(parents=True)
    for name, value in (("capacity", "84"), ("temp", "305"), ("current_now", "-412000"), ("voltage_now", "4102000")):
        (battery / name).write_text(value + "\n")

    trace_path = tmp_path / "t.jsonl"
    import os

    proc = harness.run(["--model", str(small_module_pte["pte"]), "--trace", str(trace_path), "--workload", "generic",
                        "--telemetry-interval-ms", "20"], env={**os.environ, "SLMH_SYSFS_ROOT": str(sys_root)})
    assert proc.returncode == 0, proc.stderr
    sample = read_trace(trace_path).of("telemetry")[0]
    expected = telemetry.sample(sys_root)
    assert {k: sample[k] for k in expected} == expected
    assert list(sample["thermal_mc"]) == list(expected["thermal_mc"])  # same key order too
    assert sample["thermal_mc"] == {"cpu-big": 43000, "battery": 30500, "skin": 29000}
    assert sample["cpu_max_khz"] == {"cpu0": 1704100, "cpu2": 2912100}


def test_a_run_shorter_than_the_interval_still_has_its_baseline_sample(harness, small_module_pte, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = harness.run(["--model", str(small_module_pte["pte"]), "--trace", str(trace_path), "--workload", "generic",
                        "--telemetry-interval-ms", "600000"])
    assert proc.returncode == 0, proc.stderr
    events = read_trace(trace_path).events
    assert [e["type"] for e in events[:3]] == ["header", "telemetry", "load"]
    assert sum(e["type"] == "telemetry" for e in events) == 1


def test_dump_tokens_writes_the_prompt_and_every_run(harness, tiny_fp32, tmp_path):
    dump = tmp_path / "tokens.json"
    proc = harness.run(harness.llm_args(tiny_fp32, tmp_path / "t.jsonl").argv() + ["--dump-tokens", str(dump)])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(dump.read_text())
    assert len(data["prompt"]) == 16 and all(0 <= t < 4096 for t in data["prompt"])
    assert [(r["warmup"], r["run"]) for r in data["runs"]] == [(True, 0), (False, 0), (False, 1), (False, 2)]
    assert all(len(r["tokens"]) == 9 for r in data["runs"])  # the prefill's token + 8 decode steps
    # every run restarts at position 0, so greedy decoding repeats itself exactly
    assert all(r["tokens"] == data["runs"][0]["tokens"] for r in data["runs"])


@pytest.fixture(scope="module")
def embedding_pte(tmp_path_factory, lookup_model) -> Path:
    import torch
    from executorch.exir import to_edge

    path = tmp_path_factory.mktemp("lookup") / "lookup.pte"
    path.write_bytes(to_edge(torch.export.export(*lookup_model)).to_executorch().buffer)
    return path


@pytest.mark.parametrize("which", ["native", "python"])
def test_given_inputs_are_what_the_generic_workload_feeds(harness, embedding_pte, tmp_path, which):
    import numpy as np

    def run(ids: list[int]) -> tuple[subprocess.CompletedProcess, Path]:
        data = tmp_path / f"ids{len(ids)}-{ids[-1]}.bin"
        np.asarray(ids, dtype="<i8").tofile(data)
        trace = tmp_path / f"{data.stem}.jsonl"
        args = HarnessArgs(model=str(embedding_pte), trace=str(trace), workload="generic", iterations=3, runs=1,
                           warmup=0, telemetry_interval_ms=0, inputs=[str(data)])
        return (harness.run(args) if which == "native" else harness.run_python(args)), trace

    proc, trace = run([0, 1, 3])  # id 3: never drawn by the random fill ({0, 1})
    assert proc.returncode == 0, proc.stderr
    assert read_trace(trace).header["workload"]["inputs"] == [str(tmp_path / "ids3-3.bin")]
    assert len(list(read_trace(trace).iterations())) == 1
    proc, trace = run([0, 1, 99])  # out of the table: the method itself fails on the given value
    assert proc.returncode == 4 and read_trace(trace).error
    proc, trace = run([0, 1])  # 16 bytes for a 24-byte tensor
    assert proc.returncode == 2 and "must hold exactly 24 bytes" in proc.stderr
    assert read_trace(trace).of("error")[0]["phase"] == "load" and not read_trace(trace).of("iteration")
