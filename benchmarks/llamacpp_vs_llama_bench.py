"""Measurement truth for llama.cpp: slmdeploy's harnesses vs llama-bench on the same GGUF and threads.

Prints, in one run, prefill and decode tok/s of llama.cpp's own ``llama-bench`` and of
slmdeploy's native harness (and its Python harness, through llama-cpp-python) side by side,
with the ratios (goal: within 5%). All three use the libllama that slmdeploy built from the
pinned source, the same file and the same thread count, and they run interleaved
(``--reps`` rounds), so drift on a shared machine hits all of them alike.

How the workloads are made comparable. llama-bench reports ``pp P`` (P prompt tokens in one
batch, from an empty cache) and ``tg G`` (G single-token decodes, from an empty cache unless
``-d`` gives a depth), each the mean over ``-r`` repetitions of tokens / seconds, after one
warm-up. slmdeploy's llm workload is a prefill of P tokens and then G decode steps *at
positions P..P+G-1*, so the decode side is compared with llama-bench's ``tg G @ d P``
(``-n G -d P``: the depth is prefilled untimed, the G steps are timed), the prefill side with
``pp P`` (``-p P -n 0``). Both sides use llama-bench's context (n_batch 2048, n_ubatch 512,
f16 KV cache, flash attention auto), its threadpool (poll 50) and one warm-up run, and a
context of P + G tokens (``--max-seq-len``). What differs by design: slmdeploy's decode steps
also take the argmax of the logits (a real generation loop samples; llama-bench feeds random
ids and reads nothing), and its prompt ids come from ``--seed``.

    python benchmarks/llamacpp_vs_llama_bench.py                     # smollm2-135m, q4_0, P=64 G=32
    python benchmarks/llamacpp_vs_llama_bench.py --model llama-tiny --target gguf-f16 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from slmdeploy.analysis.metrics import summarize
from slmdeploy.harness.protocol import HarnessArgs
from slmdeploy.harness.trace import read_trace


def llama_bench(tools, model: Path, threads: int, reps: int, *, prompt: int = 0, gen: int = 0,
                depth: int = 0) -> dict:
    """One llama-bench test (JSON output): ``pp`` when ``prompt``, ``tg`` at ``depth`` when ``gen``."""
    cmd = [str(tools.bench), "-m", str(model), "-p", str(prompt), "-n", str(gen), "-d", str(depth),
           "-t", str(threads), "-r", str(reps), "-o", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tools.env())
    if proc.returncode != 0:
        raise SystemExit(f"llama-bench failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    tests = [t for t in json.loads(proc.stdout) if (t["n_prompt"], t["n_gen"]) == (prompt, gen)]
    if len(tests) != 1:
        raise SystemExit(f"llama-bench printed {len(tests)} tests for -p {prompt} -n {gen}:\n{proc.stdout[-2000:]}")
    return tests[0]


def harness(cmd: list[str], args: HarnessArgs) -> dict:
    proc = subprocess.run([*cmd, *args.argv()], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[-1]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    trace = read_trace(Path(args.trace))
    return summarize(trace) | {"load": trace.of("load")[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="zoo model or checkpoint (default smollm2-135m)")
    parser.add_argument("--target", default="gguf-q4_0", help="a gguf-* target (default gguf-q4_0)")
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens P")
    parser.add_argument("--gen", type=int, default=32, help="generated tokens G")
    parser.add_argument("--runs", type=int, default=5, help="measured runs (llama-bench -r) per invocation")
    parser.add_argument("--reps", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=2, help="threads for all three (llama-bench -t)")
    parser.add_argument("--no-python", action="store_true", help="leave out the Python harness")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from slmdeploy import llamacpp
    from slmdeploy.export import export
    from slmdeploy.harness import native

    tools = llamacpp.toolchain(bench=True)
    rows: dict[str, dict[str, list[float]]] = {name: {"pp": [], "tg": []} for name in ("llama-bench", "native", "python")}
    with tempfile.TemporaryDirectory() as tmp:
        artifact = export(args.model, args.target, Path(tmp) / "artifact")
        model = artifact.model_file
        size_mib = model.stat().st_size / 2**20
        binary = native.build()
        vocab = artifact.manifest.llm.vocab_size
        programs = {"native": [str(binary)]}
        if not args.no_python:
            programs["python"] = [sys.executable, "-m", "slmdeploy.harness.python_harness"]
        for rep in range(args.reps):
            pp = llama_bench(tools, model, args.threads, args.runs, prompt=args.prompt)
            tg = llama_bench(tools, model, args.threads, args.runs, gen=args.gen, depth=args.prompt)
            rows["llama-bench"]["pp"].append(pp["avg_ts"])
            rows["llama-bench"]["tg"].append(tg["avg_ts"])
            for name, cmd in programs.items():
                h = HarnessArgs(model=str(model), trace=str(Path(tmp) / f"{name}-{rep}.jsonl"), runtime="llamacpp",
                                prompt_tokens=args.prompt, gen_tokens=args.gen, max_seq_len=args.prompt + args.gen,
                                vocab_size=vocab, warmup=1, runs=args.runs, threads=args.threads,
                                telemetry_interval_ms=0)
                summary = harness(cmd, h)
                rows[name]["pp"].append(summary["prefill_tps"])
                rows[name]["tg"].append(summary["decode_tps"])
            print(f"  round {rep + 1}/{args.reps} done", file=sys.stderr)

    m = artifact.manifest
    print(f"\n{args.model} / {args.target}: {model.name} ({size_mib:.1f} MiB, "
          f"{m.quantization.get('bits_per_weight')} bits/weight), llama.cpp from llama-cpp-python {tools.version} "
          f"(ggml {tools.ggml_version})")
    print(f"P={args.prompt} G={args.gen}, threads={args.threads}, {args.reps} rounds x {args.runs} runs; "
          f"llama-bench: pp{args.prompt} and tg{args.gen} @ d{args.prompt}\n")
    print(f"{'':24}{'llama-bench':>12}{'native':>10}{'python':>10}{'native/lb':>11}{'python/lb':>11}")
    goals = {}
    for key, label in (("pp", "prefill tok/s"), ("tg", "decode tok/s")):
        lb = [v for v in rows["llama-bench"][key]]
        for stat in ("median", "max"):
            pick = statistics.median if stat == "median" else max
            ref = pick(lb)
            nat = pick(rows["native"][key])
            py = pick(rows["python"][key]) if rows["python"][key] else float("nan")
            print(f"{label + ' (' + stat + ')':24}{ref:>12.1f}{nat:>10.1f}{py:>10.1f}{nat / ref:>11.3f}{py / ref:>11.3f}")
            goals[f"{key} native ({stat})"] = abs(nat / ref - 1) <= 0.05
    per_round = [(n / b, t / c) for n, b, t, c in zip(rows["native"]["pp"], rows["llama-bench"]["pp"],
                                                        rows["native"]["tg"], rows["llama-bench"]["tg"])]
    print("\nnative/llama-bench per round (pp, tg): " + ", ".join(f"({a:.3f}, {b:.3f})" for a, b in per_round))
    print("goal, within 5%: " + ", ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in goals.items()))
    if args.json_out:
        args.json_out.write_text(json.dumps({"model": args.model, "target": args.target, "prompt": args.prompt,
                                             "gen": args.gen, "threads": args.threads, "rows": rows, "goals": goals},
                                            indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
