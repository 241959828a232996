"""Native vs Python harness on this host, for the same artifact.

Prints, in one run:

1. prefill and decode tok/s of the native harness and of the Python harness side by side,
   with their ratio (goal: within 10%);
2. the native harness's per-decode-step time vs ``bare_loop`` -- the same Module API calls
   on the same inputs with nothing else, timed per run instead of per step (goal: < 1%);
3. the native harness's peak RSS vs the model file size (and the Python harness's);
4. a floor that noise cannot blur: the native harness's time per call of a one-operator
   program (generic workload). Everything the harness does per step besides the model's
   own work is inside that figure, so floor / decode step bounds its per-step overhead.

The three programs run interleaved, ``--reps`` times each. Prefill figures are per run;
decode figures come from the per-step times (``step_ns``; bare_loop times its steps the same
way), as the median and as the 10th percentile. On a shared host other processes only ever
add time, so the low percentile compares the programs' own costs; the median is what a
user sees.

    python benchmarks/native_vs_python.py                       # llama-tiny, fp32, XNNPACK
    python benchmarks/native_vs_python.py --model smollm2-135m --prompt 128 --gen 64
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from slmdeploy.harness.protocol import HarnessArgs
from slmdeploy.harness.trace import read_trace


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _trace_figures(path: Path) -> dict[str, list[float]]:
    trace = read_trace(path)
    if not trace.complete:
        raise SystemExit(f"incomplete trace {path}: {trace.error}")
    its = list(trace.iterations())
    hwm = [e["hwm_kib"] for e in trace.events if isinstance(e.get("hwm_kib"), int)]
    return {
        "prefill_ns": [e["ns"] for e in its if e["phase"] == "prefill"],
        "step_ns": [ns for e in its if e["phase"] == "decode" for ns in e["step_ns"]],
        "peak_rss_kib": [max(hwm)],
    }


def _one_op_program(path: Path) -> Path:
    """A program of one non-delegated ``add`` on a 1-element tensor: a call costs next to nothing."""
    import torch
    from executorch.exir import to_edge

    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    path.write_bytes(to_edge(torch.export.export(AddOne(), (torch.zeros(1),))).to_executorch().buffer)
    return path


def _merge(into: dict[str, list[float]], more: dict[str, list[float]]) -> None:
    for key, values in more.items():
        into.setdefault(key, []).extend(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="llama-tiny", help="zoo model (default llama-tiny)")
    parser.add_argument("--target", default="host-xnnpack", help="export target (default host-xnnpack, fp32)")
    parser.add_argument("--prompt", type=int, default=64, help="prompt tokens P")
    parser.add_argument("--gen", type=int, default=64, help="generated tokens G")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per harness invocation")
    parser.add_argument("--reps", type=int, default=3, help="interleaved invocations of each program")
    parser.add_argument("--threads", type=int, default=0, help="thread pool size (0 = runtime default)")
    parser.add_argument("--json", dest="json_out", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from slmdeploy.export import export
    from slmdeploy.harness import native

    results: dict[str, dict[str, list[float]]] = {"native": {}, "python": {}, "bare": {}}
    with tempfile.TemporaryDirectory() as tmp:
        artifact = export(args.model, args.target, Path(tmp) / "artifact", progress=False)  # cached by content
        llm = artifact.manifest.llm
        binary = native.build(progress=False)
        bare = binary.parent / "bare_loop"
        model_size = artifact.model_file.stat().st_size
        for rep in range(args.reps):
            for name in ("native", "python", "bare"):
                trace = Path(tmp) / f"{name}-{rep}.jsonl"
                h = HarnessArgs(model=str(artifact.model_file), trace=str(trace), prompt_tokens=args.prompt,
                                gen_tokens=args.gen, max_seq_len=llm.max_seq_len, vocab_size=llm.vocab_size,
                                warmup=1, runs=args.runs, threads=args.threads)
                if name == "native":
                    cmd = [str(binary), *h.argv()]
                elif name == "python":
                    cmd = [sys.executable, "-m", "slmdeploy.harness.python_harness", *h.argv()]
                else:
                    cmd = [str(bare), "--model", str(artifact.model_file), "--prompt-tokens", str(args.prompt),
                           "--gen-tokens", str(args.gen), "--vocab-size", str(llm.vocab_size), "--runs",
                           str(args.runs), "--warmup", "1", "--threads", str(args.threads)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
                if name == "bare":
                    out = json.loads(proc.stdout)
                    _merge(results["bare"], {"prefill_ns": out["prefill_ns"], "step_ns": out["step_ns"]})
                else:
                    _merge(results[name], _trace_figures(trace))
            print(f"  rep {rep + 1}/{args.reps} done", file=sys.stderr)
        floor_trace = Path(tmp) / "floor.jsonl"
        proc = subprocess.run([str(binary), "--model", str(_one_op_program(Path(tmp) / "one_op.pte")), "--trace",
                               str(floor_trace), "--workload", "generic", "--iterations", "1000", "--runs", "5",
                               "--threads", str(args.threads)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"floor run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        floor_ns = [ns for e in read_trace(floor_trace).iterations() for ns in e["step_ns"]]

    stats = {kind: {name: {"prefill_tps": args.prompt / _percentile(f["prefill_ns"], q) * 1e9,
                           "step_ns": _percentile(f["step_ns"], q)}
                    for name, f in results.items()}
             for kind, q in (("median", 0.5), ("p10", 0.1))}
    info = native.build_info(binary)
    print(f"\n{args.model} / {args.target}: {artifact.manifest.model_file.path} ({model_size / 2**20:.1f} MiB)")
    print(f"P={args.prompt} G={args.gen}, {args.reps} x {args.runs} measured runs per program, threads={args.threads}"
          f" | ExecuTorch {info.get('executorch_version')} | {len(results['native']['step_ns'])} decode steps each")
    goals: dict[str, dict[str, bool]] = {}
    print("\n1. native vs Python harness       native     python   native/python")
    for kind in ("median", "p10"):
        n, p = stats[kind]["native"], stats[kind]["python"]
        n_dec, p_dec = 1e9 / n["step_ns"], 1e9 / p["step_ns"]
        print(f"   prefill tok/s ({kind:<6})  {n['prefill_tps']:>12.1f} {p['prefill_tps']:>10.1f} "
              f"{n['prefill_tps'] / p['prefill_tps']:>10.3f}")
        print(f"   decode tok/s ({kind:<6})   {n_dec:>12.1f} {p_dec:>10.1f} {n_dec / p_dec:>10.3f}"
              f"   (Python: {(p['step_ns'] - n['step_ns']) / 1e3:+.1f} us/step)")
    print("\n2. decode step (us)                native  bare_loop   overhead")
    for kind in ("median", "p10"):
        n_step, b_step = stats[kind]["native"]["step_ns"], stats[kind]["bare"]["step_ns"]
        print(f"   step ({kind:<6})            {n_step / 1e3:>12.1f} {b_step / 1e3:>10.1f} {(n_step / b_step - 1) * 100:>+9.2f}%")
        n, p = stats[kind]["native"], stats[kind]["python"]
        goals[kind] = {
            "throughput within 10%": abs(n["prefill_tps"] / p["prefill_tps"] - 1) <= 0.10
            and abs(p["step_ns"] / n["step_ns"] - 1) <= 0.10,
            "step overhead < 1%": n_step / b_step - 1 < 0.01,
        }
    n_rss, p_rss = max(results["native"]["peak_rss_kib"]), max(results["python"]["peak_rss_kib"])
    print("\n3. memory                          native     python  model file")
    print(f"   peak RSS (MiB)             {n_rss / 1024:>10.1f} {p_rss / 1024:>10.1f} {model_size / 2**20:>10.1f}")
    print(f"   peak RSS / model file      {n_rss * 1024 / model_size:>10.2f} {p_rss * 1024 / model_size:>10.2f}")
    floor = _percentile(floor_ns, 0.5)
    step = stats["median"]["bare"]["step_ns"]
    print("\n4. per-call floor (one-op program, 5000 calls)")
    print(f"   median call {floor / 1e3:.2f} us = {floor / step * 100:.3f}% of a decode step"
          f" ({step / 1e3:.0f} us): the bound on the harness's per-step overhead")
    goals["floor"] = {"step overhead < 1%": floor / step < 0.01}
    for kind, met in goals.items():
        print(f"\n   goals ({kind}): " + ", ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in met.items()), end="")
    print()
    if args.json_out:
        args.json_out.write_text(json.dumps({"model": args.model, "target": args.target, "model_size": model_size,
                                             "threads": args.threads, **stats, "raw": results, "goals": goals,
                                             "floor_call_ns": floor},
                                            indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
