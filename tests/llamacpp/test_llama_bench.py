"""llama-bench, built from the same pinned source, on a GGUF slmdeploy exported (slow: it compiles llama.cpp's
common library, minutes on 2 cores). Its figures against ours are benchmarks/llamacpp_vs_llama_bench.py's job;
this checks the two load and describe the same file the same way."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from slmdeploy.harness.protocol import HarnessArgs
from slmdeploy.harness.trace import read_trace

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "llamacpp_vs_llama_bench.py"


def test_llama_bench_and_the_harness_see_the_same_model(gguf_q4_0, gguf_harness, tmp_path):
    from slmdeploy import llamacpp

    tools = llamacpp.toolchain(progress=False, jobs=2, bench=True)
    spec = importlib.util.spec_from_file_location("llamacpp_vs_llama_bench", BENCH)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    pp = script.llama_bench(tools, gguf_q4_0.model_file, threads=2, reps=2, prompt=8)
    tg = script.llama_bench(tools, gguf_q4_0.model_file, threads=2, reps=2, gen=4, depth=8)
    assert pp["avg_ts"] > 0 and tg["avg_ts"] > 0 and len(tg["samples_ts"]) == 2
    assert (pp["n_threads"], pp["type_k"], pp["n_batch"], pp["n_ubatch"]) == (2, "f16", 2048, 512)

    llm = gguf_q4_0.manifest.llm
    args = HarnessArgs(model=str(gguf_q4_0.model_file), trace=str(tmp_path / "t.jsonl"), runtime="llamacpp",
                       prompt_tokens=8, gen_tokens=4, max_seq_len=12, vocab_size=llm.vocab_size, runs=1, threads=2)
    subprocess.run([str(gguf_harness), *args.argv()], check=True, capture_output=True, timeout=120)
    load = read_trace(tmp_path / "t.jsonl").of("load")[0]["llamacpp"]
    assert (load["model_bytes"], load["params"], load["n_ctx"]) == (pp["model_size"], pp["model_n_params"], 12)
