"""The native harness computes real results: its greedy tokens equal an independent reference.

``--dump-tokens`` (a native debug extension) writes the prompt and every run's sampled
tokens. The references decode the same prompt with ExecuTorch's Python runtime (the loop of
the Python harness) and with LiteRT's Python interpreter (passing each call's state
output to the next call, the TFLite exporter's I/O KV cache convention).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from slmdeploy.harness.trace import read_trace

def _executorch_greedy(model_file, prompt: list[int], steps: int) -> list[int]:
    import torch
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(model_file)).load_method("forward")
    logits = method.execute([torch.tensor([prompt]), torch.arange(len(prompt))])[0]
    token = logits.argmax(-1, keepdim=True)
    out = [int(token)]
    for i in range(steps):
        logits = method.execute([token, torch.tensor([len(prompt) + i])])[0]
        token = logits.argmax(-1, keepdim=True)
        out.append(int(token))
    return out


@pytest.mark.parametrize("artifact_name", ["tiny_fp32", "tiny_8da4w"])
def test_greedy_tokens_equal_the_executorch_python_runtime(harness, request, tmp_path, artifact_name):
    artifact = request.getfixturevalue(artifact_name)
    sequences = []
    for seed in (1, 3):
        dump = tmp_path / f"tokens-{seed}.json"
        args = harness.llm_args(artifact, tmp_path / f"t{seed}.jsonl", prompt_tokens=16, gen_tokens=12, warmup=0,
                                runs=1, seed=seed, telemetry_interval_ms=0)
        proc = harness.run(args.argv() + ["--dump-tokens", str(dump)])
        assert proc.returncode == 0, proc.stderr
        data = json.loads(dump.read_text())
        native = data["runs"][0]["tokens"]
        assert native == _executorch_greedy(artifact.model_file, data["prompt"], 12)
        sequences.append((data["prompt"], native))
    # different seeds, different prompts and (for this model) different continuations
    assert sequences[0][0] != sequences[1][0] and sequences[0][1] != sequences[1][1]


def _litert_greedy(model: str, prompt: list[int], steps: int) -> list[int]:
    """Greedy decoding with LiteRT's Python interpreter, threading the state output to the next call."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model)
    prefill, decode = interpreter.get_signature_runner("prefill"), interpreter.get_signature_runner("decode")
    out = prefill(tokens=np.array([prompt], np.int32), input_pos=np.arange(len(prompt), dtype=np.int32),
                  h_cache=np.zeros((1, 16), np.float32))
    tokens = [int(out["logits"][0].argmax())]
    for i in range(steps):
        out = decode(tokens=np.array([[tokens[-1]]], np.int32), input_pos=np.array([len(prompt) + i], np.int32),
                     h_cache=out["h_cache"])
        tokens.append(int(out["logits"][0].argmax()))
    return tokens


def _toy_argv(toy: dict, trace, prompt_tokens: int, gen_tokens: int) -> list[str]:
    return ["--model", str(toy["path"]), "--trace", str(trace), "--runtime", "tflite",
            "--prompt-tokens", str(prompt_tokens), "--gen-tokens", str(gen_tokens), "--vocab-size", str(toy["vocab"]),
            "--prefill-method", "prefill", "--decode-method", "decode"]


def test_litert_llm_workload_equals_the_litert_interpreter(harness, toy_lm_tflite, tmp_path):
    dump = tmp_path / "tokens.json"
    prefill = toy_lm_tflite["prefill"]
    proc = harness.run(_toy_argv(toy_lm_tflite, tmp_path / "t.jsonl", prefill, 10) + [
                       "--runs", "2", "--seed", "5", "--dump-tokens", str(dump)])
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(tmp_path / "t.jsonl")
    assert trace.complete and trace.header["runtime"]["name"] == "tflite"
    assert [(e["phase"], e["tokens"]) for e in trace.iterations()] == [("prefill", prefill), ("decode", 10)] * 2
    data = json.loads(dump.read_text())
    assert len(data["prompt"]) == prefill and all(0 <= t < toy_lm_tflite["vocab"] for t in data["prompt"])
    expected = _litert_greedy(str(toy_lm_tflite["path"]), data["prompt"], 10)
    assert len(set(expected)) > 2  # a sequence that a wrong token, position or state would change
    assert all(run["tokens"] == expected for run in data["runs"])


def test_litert_prefill_length_is_checked_against_the_signature(harness, toy_lm_tflite, tmp_path):
    trace_path = tmp_path / "t.jsonl"
    proc = harness.run(_toy_argv(toy_lm_tflite, trace_path, 12, 4))
    assert proc.returncode == 2
    assert "prefill signature 'prefill' takes 8 tokens; pass --prompt-tokens 8" in proc.stderr
    assert read_trace(trace_path).of("error")[0]["phase"] == "load"
