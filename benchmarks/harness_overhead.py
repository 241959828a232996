"""Harness overhead: decode-step latency measured by the Python harness vs a bare loop.

Both time the same thing — one ``method.execute`` of the same ExecuTorch program plus the
greedy argmax — on the same inputs and thread count; rounds alternate harness and bare loop
so drift on a shared machine hits both. Two comparisons, each a ratio of median step
latencies (goal: harness / bare < 1.01):

- in-process: the harness's own decode loop (``python_harness.run_llm``) vs the bare loop,
  same process, same loaded method — the harness's per-step cost and nothing else;
- end-to-end: the harness as the subprocess ``slmdeploy bench`` runs vs the bare loop.

    python benchmarks/harness_overhead.py                 # llama-tiny (CI size)
    python benchmarks/harness_overhead.py --model smollm2-135m --gen 64
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from slmdeploy.export import export
from slmdeploy.harness.protocol import HarnessArgs
from slmdeploy.harness.trace import read_trace


def bare_loop(method, prompt_len: int, gen: int, vocab: int, seed: int) -> list[int]:
    prompt = torch.randint(0, vocab, (1, prompt_len), generator=torch.Generator().manual_seed(seed))
    positions = [torch.tensor([prompt_len + i]) for i in range(gen)]
    token = method.execute([prompt, torch.arange(prompt_len)])[0].argmax(-1, keepdim=True)
    steps = []
    for pos in positions:
        start = time.perf_counter_ns()
        token = method.execute([token, pos])[0].argmax(-1, keepdim=True)
        steps.append(time.perf_counter_ns() - start)
    return steps


def harness_steps(artifact, prompt_len: int, gen: int, threads: int, seed: int) -> list[int]:
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.jsonl"
        args = HarnessArgs(model=str(artifact.model_file), trace=str(trace), prompt_tokens=prompt_len, gen_tokens=gen,
                           warmup=1, runs=1, threads=threads, seed=seed, telemetry_interval_ms=0,
                           max_seq_len=artifact.manifest.llm.max_seq_len, vocab_size=artifact.manifest.llm.vocab_size)
        subprocess.run([sys.executable, "-m", "slmdeploy.harness.python_harness", *args.argv()], check=True,
                       capture_output=True)
        return [ns for e in read_trace(trace).iterations() if e["phase"] == "decode" for ns in e["step_ns"]]


def harness_in_process(method, args_ns, artifact) -> list[int]:
    from slmdeploy.harness import python_harness

    events: list[dict] = []
    args = HarnessArgs(model="", trace="", prompt_tokens=args_ns.prompt, gen_tokens=args_ns.gen, warmup=0, runs=1,
                       vocab_size=artifact.manifest.llm.vocab_size, max_seq_len=artifact.manifest.llm.max_seq_len)
    python_harness.run_llm(args, method, events.append)
    return [ns for e in events if e["phase"] == "decode" for ns in e["step_ns"]]


def ratio_line(label: str, harness: list[int], bare: list[int]) -> str:
    h, b = statistics.median(harness), statistics.median(bare)
    return (f"{label}: harness {h / 1e3:.1f} us | bare loop {b / 1e3:.1f} us | "
            f"ratio {h / b:.4f} (overhead {(h / b - 1) * 100:+.2f}%; goal < +1%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="llama-tiny")
    parser.add_argument("--target", default="host-xnnpack")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--gen", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from executorch.extension.pybindings import portable_lib
    from executorch.runtime import Runtime

    artifact = export(args.model, args.target)
    torch.set_num_threads(1)  # as the harness does: torch only takes argmaxes, ExecuTorch has the cores
    portable_lib._unsafe_reset_threadpool(args.threads)
    method = Runtime.get().load_program(str(artifact.model_file)).load_method("forward")
    vocab = artifact.manifest.llm.vocab_size
    bare_loop(method, args.prompt, args.gen, vocab, 0)  # warm-up, as the harness does
    inproc_h, inproc_b, sub_h, sub_b = [], [], [], []
    for r in range(args.rounds):
        for _ in range(4):  # in-process rounds are cheap: more of them, interleaved
            inproc_h += harness_in_process(method, args, artifact)
            inproc_b += bare_loop(method, args.prompt, args.gen, vocab, 0)
        sub_h += harness_steps(artifact, args.prompt, args.gen, args.threads, 0)
        sub_b += bare_loop(method, args.prompt, args.gen, vocab, 0)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"model {args.model} ({args.target}), prompt {args.prompt}, {args.gen} decode steps, "
          f"{args.rounds} rounds, {args.threads} threads")
    print(ratio_line("in-process decode step median", inproc_h, inproc_b))
    print(ratio_line("end-to-end (harness subprocess) decode step median", sub_h, sub_b))


if __name__ == "__main__":
    main()
