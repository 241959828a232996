"""`--accelerator` on LiteRT: what is in effect is what the trace says.

This host's LiteRT (the ai-edge-litert wheel) registers the CPU accelerator only, so a GPU
request must fail at load -- LiteRT would otherwise run it on the CPU under a GPU label.
"""

from __future__ import annotations

from pathlib import Path

from slmdeploy.analysis.metrics import summarize
from slmdeploy.harness.protocol import EXIT_LOAD_FAILED, EXIT_OK
from slmdeploy.harness.trace import read_trace

NO_GPU = "no GPU accelerator is available in this LiteRT build"


def _generic(harness, model: Path, trace: Path, accelerator: str):
    return harness.run(["--model", str(model), "--trace", str(trace), "--runtime", "tflite", "--workload", "generic",
                        "--iterations", "2", "--warmup", "1", "--runs", "1", "--threads", "1",
                        "--accelerator", accelerator])


def test_gpu_without_a_gpu_accelerator_fails_at_load(harness, small_tflite, tmp_path):
    trace_path = tmp_path / "gpu.jsonl"
    proc = _generic(harness, small_tflite, trace_path, "gpu")

    assert proc.returncode == EXIT_LOAD_FAILED, proc.stderr
    reported = [line for line in proc.stderr.splitlines() if line.startswith("slmdeploy_harness:")]
    assert len(reported) == 1 and NO_GPU in reported[0]
    trace = read_trace(trace_path)
    assert not trace.complete and not trace.of("load") and not list(trace.iterations(include_warmup=True))
    (error,) = trace.of("error")
    assert error["phase"] == "load" and "\n" not in error["message"]
    assert NO_GPU in error["message"]
    assert "registered: CpuAccelerator" in error["message"]  # what the build does have
    assert "libLiteRtGpuAccelerator.so" in error["message"]  # and what would bring the GPU
    assert "--accelerator cpu" in error["message"]


def test_cpu_load_event_says_what_is_in_effect(harness, small_tflite, tmp_path):
    trace_path = tmp_path / "cpu.jsonl"
    proc = _generic(harness, small_tflite, trace_path, "cpu")

    assert proc.returncode == EXIT_OK, proc.stderr
    trace = read_trace(trace_path)
    assert trace.complete
    (load,) = trace.of("load")
    assert load["accelerator"] == "cpu"
    assert load["accelerators"] == ["CpuAccelerator"]  # the wheel: XNNPACK only
    assert load["fully_accelerated"] is True  # a Linear + ReLU: every op in XNNPACK
    assert summarize(trace)["load_ms"] > 0  # the analysis reads past the extra fields


def test_llm_load_event_has_the_accelerator_fields(harness, toy_lm_tflite, tmp_path):
    trace_path = tmp_path / "llm.jsonl"
    proc = harness.run(["--model", str(toy_lm_tflite["path"]), "--trace", str(trace_path), "--runtime", "tflite",
                        "--prompt-tokens", str(toy_lm_tflite["prefill"]), "--gen-tokens", "2",
                        "--vocab-size", str(toy_lm_tflite["vocab"]), "--prefill-method", "prefill",
                        "--decode-method", "decode", "--warmup", "0", "--runs", "1", "--threads", "1"])
    assert proc.returncode == EXIT_OK, proc.stderr
    (load,) = read_trace(trace_path).of("load")
    assert load["accelerator"] == "cpu" and "CpuAccelerator" in load["accelerators"]
    assert isinstance(load["fully_accelerated"], bool)


def test_executorch_load_event_has_no_litert_fields(harness, small_module_pte, tmp_path):
    trace_path = tmp_path / "et.jsonl"
    proc = harness.run(["--model", str(small_module_pte["pte"]), "--trace", str(trace_path),
                        "--workload", "generic", "--iterations", "1", "--warmup", "0", "--runs", "1"])
    assert proc.returncode == EXIT_OK, proc.stderr
    (load,) = read_trace(trace_path).of("load")
    assert not {"accelerator", "accelerators", "fully_accelerated"} & set(load)
