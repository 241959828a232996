"""The llama.cpp backend of the native harness and of the Python harness: protocol v1, same tokens, same library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from slmdeploy.harness.protocol import EXIT_USAGE, HarnessArgs
from slmdeploy.harness.trace import read_trace

P, G = 8, 6


def _args(artifact, trace, **kw) -> HarnessArgs:
    llm = artifact.manifest.llm
    base = dict(model=str(artifact.model_file), trace=str(trace), runtime="llamacpp", prompt_tokens=P, gen_tokens=G,
                max_seq_len=llm.max_seq_len, vocab_size=llm.vocab_size, warmup=1, runs=2, threads=2,
                telemetry_interval_ms=0)
    return HarnessArgs(**(base | kw))


def test_native_harness_runs_gguf_and_generates_what_llama_cpp_python_generates(gguf_q4_0, gguf_harness, tmp_path):
    trace_path, tokens_path = tmp_path / "trace.jsonl", tmp_path / "tokens.json"
    proc = subprocess.run([str(gguf_harness), *_args(gguf_q4_0, trace_path).argv(), "--dump-tokens", str(tokens_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(trace_path)
    assert trace.complete and trace.header["runtime"] == {"name": "llamacpp", "version": "0.3.36"}
    load = trace.of("load")[0]
    assert load["threads"] == 2
    assert load["llamacpp"]["n_ctx"] == gguf_q4_0.manifest.llm.max_seq_len
    assert load["llamacpp"]["type_k"] == "f16" and load["llamacpp"]["flash_attn"] == "auto"
    assert 0 < load["llamacpp"]["model_bytes"] <= gguf_q4_0.model_file.stat().st_size
    measured = [e for e in trace.iterations() if not e["warmup"]]
    assert [e["phase"] for e in measured] == ["prefill", "decode"] * 2
    assert all(len(e["step_ns"]) == G and e["rss_anon_kib"] > 0 and e["rss_file_kib"] >= 0
               for e in measured if e["phase"] == "decode")

    # the same prompt, greedy, through the Python bindings on the same libllama: the same tokens
    from slmdeploy.llamacpp.session import Session

    dumped = json.loads(tokens_path.read_text())
    with Session(gguf_q4_0.model_file, gguf_q4_0.manifest.llm.max_seq_len, threads=2) as session:
        token = int(session.decode(dumped["prompt"], 0).argmax())
        expected = [token]
        for i in range(G):
            token = int(session.decode([token], P + i).argmax())
            expected.append(token)
    assert all(run["tokens"] == expected for run in dumped["runs"]), (dumped["runs"], expected)


def test_python_harness_runs_gguf_through_llama_cpp_python(gguf_q4_0, llama_toolchain, tmp_path):
    trace_path = tmp_path / "trace.jsonl"
    proc = subprocess.run([sys.executable, "-m", "slmdeploy.harness.python_harness",
                           *_args(gguf_q4_0, trace_path).argv()], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    trace = read_trace(trace_path)
    assert trace.complete and trace.header["harness"]["name"] == "python"
    assert trace.header["runtime"] == {"name": "llamacpp", "version": "0.3.36"} and trace.of("load")[0]["threads"] == 2
    decode = [e for e in trace.iterations() if e["phase"] == "decode"]
    assert len(decode) == 2 and all(len(e["step_ns"]) == G and e["rss_file_kib"] >= 0 for e in decode)


@pytest.mark.parametrize("harness", ["native", "python"])
def test_generic_workload_is_a_usage_error(gguf_q4_0, gguf_harness, tmp_path, harness):
    args = _args(gguf_q4_0, tmp_path / "trace.jsonl", workload="generic")
    cmd = [str(gguf_harness)] if harness == "native" else [sys.executable, "-m", "slmdeploy.harness.python_harness"]
    proc = subprocess.run([*cmd, *args.argv()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_USAGE and "llm workload only" in proc.stderr


def test_the_build_records_and_bundles_llama_cpp(gguf_harness, llama_toolchain):
    from slmdeploy.harness import native

    info = native.build_info(gguf_harness)
    assert info["llamacpp_version"] == "0.3.36"
    bundle = native.bundle_for_abi(native.host_abi())
    names = {p.name for p in bundle}
    # under their SONAMEs, the names the binary's and libllama's NEEDED entries ask for
    assert {"libllama.so.0", "libggml.so.0", "libggml-base.so.0", "libggml-cpu.so.0"} <= names
    assert all(p.parent == llama_toolchain.lib_dir for p in bundle if p.name.startswith(("libllama", "libggml")))
