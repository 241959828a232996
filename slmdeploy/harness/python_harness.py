"""The Python harness: protocol v1 on ExecuTorch's Python runtime, or llama.cpp's through llama-cpp-python.

Runs wherever Python and the executorch wheel exist (this host, Linux boards). It is a
plain script on purpose: it imports nothing from slmdeploy but the protocol helpers (and,
for ``--runtime llamacpp``, the llama.cpp session the parity check uses), so its own cost
inside the timed region is one ``execute`` and one ``argmax`` per step.

    python -m slmdeploy.harness.python_harness --model model.pte --trace trace.jsonl \
        --workload llm --prompt-tokens 64 --gen-tokens 32 --max-seq-len 256 --vocab-size 49152
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import signal
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slmdeploy._version import __version__
from slmdeploy.harness import bandwidth, memory, telemetry
from slmdeploy.harness.protocol import (
    EXIT_INTERRUPTED,
    EXIT_LOAD_FAILED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    PROTOCOL,
    HarnessArgs,
)
from slmdeploy.harness.trace import TraceWriter

T0 = time.monotonic_ns()


def clock() -> int:
    return time.monotonic_ns() - T0


class UsageError(Exception):
    pass


RUNTIMES = ("executorch", "llamacpp")


def parse_args(argv: list[str]) -> HarnessArgs:
    parser = argparse.ArgumentParser(prog="python_harness", description="slmdeploy harness (protocol v1)")
    defaults = HarnessArgs(model="", trace="")
    for name, value in vars(defaults).items():
        if name == "inputs":
            parser.add_argument("--input", dest="inputs", action="append", default=[])
            continue
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=value, required=name in ("model", "trace"))
    ns = parser.parse_args(argv)
    args = HarnessArgs(**vars(ns))
    if args.inputs and args.workload != "generic":
        raise UsageError("--input feeds the generic workload (--workload generic); "
                         "the llm workload makes its prompt from --seed")
    if args.workload not in ("llm", "generic"):
        raise UsageError(f"--workload must be llm or generic, got {args.workload!r}")
    if args.runtime not in RUNTIMES:
        raise UsageError(f"the Python harness runs {' and '.join(RUNTIMES)}, got --runtime {args.runtime}")
    if args.runtime == "llamacpp" and args.workload != "llm":
        raise UsageError("a GGUF model runs the llm workload only (llama.cpp has no generic method to invoke)")
    if args.workload == "llm":
        if args.prompt_tokens < 1 or args.gen_tokens < 0:
            raise UsageError("--prompt-tokens must be >= 1 and --gen-tokens >= 0")
        if args.vocab_size < 1:
            raise UsageError("--vocab-size is required for the llm workload")
        if args.max_seq_len and args.prompt_tokens + args.gen_tokens > args.max_seq_len:
            raise UsageError(
                f"prompt {args.prompt_tokens} + generation {args.gen_tokens} tokens exceed "
                f"the program's max sequence length {args.max_seq_len}"
            )
    if args.runs < 1 or args.warmup < 0:
        raise UsageError("--runs must be >= 1 and --warmup >= 0")
    if args.bandwidth_probe_mib < 0:
        raise UsageError("--bandwidth-probe-mib must be >= 0 (0: no probe)")
    return args


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def header(args: HarnessArgs, runtime_version: str, runtime: str = "executorch") -> dict[str, Any]:
    uname = platform.uname()
    return {
        "type": "header",
        "t_ns": clock(),
        "protocol": PROTOCOL,
        "harness": {"name": "python", "version": __version__, "language": f"python {platform.python_version()}"},
        "runtime": {"name": runtime, "version": runtime_version},
        "model": {"path": args.model, "size": _size(args.model), "sha256": args.artifact_sha256},
        "workload": {
            "kind": args.workload,
            "prompt_tokens": args.prompt_tokens,
            "gen_tokens": args.gen_tokens,
            "iterations": args.iterations,
            "warmup": args.warmup,
            "runs": args.runs,
            "threads": args.threads,
            "seed": args.seed,
            "prefill_method": args.prefill_method,
            "decode_method": args.decode_method,
            "method": args.method,
            "inputs": args.inputs,
        },
        "host": {
            "hostname": socket.gethostname(),
            "os": uname.system,
            "kernel": uname.release,
            "arch": uname.machine,
            "cpus": os.cpu_count(),
        },
        "run_id": args.run_id,
        "pid": os.getpid(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }


def run_llm(args: HarnessArgs, method, emit, decode_method=None) -> int:
    """Warm-up, then ``runs`` x (prefill P tokens, then G greedy decode steps)."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, args.vocab_size, (1, args.prompt_tokens), generator=gen)
    prompt_pos = torch.arange(args.prompt_tokens)
    step_pos = [torch.tensor([args.prompt_tokens + i]) for i in range(args.gen_tokens)]
    execute, perf = method.execute, time.perf_counter_ns
    step = (decode_method or method).execute
    count = 0
    for index in range(args.warmup + args.runs):
        warm = index < args.warmup
        run = index if warm else index - args.warmup
        start = perf()
        logits = execute([prompt, prompt_pos])[0]
        token = logits.argmax(-1, keepdim=True)
        prefill_ns = perf() - start
        emit({"type": "iteration", "t_ns": clock(), "run": run, "warmup": warm, "phase": "prefill",
              "tokens": args.prompt_tokens, "start_pos": 0, "ns": prefill_ns, **memory.snapshot()})
        steps = [0] * args.gen_tokens
        for i, pos in enumerate(step_pos):
            start = perf()
            logits = step([token, pos])[0]
            token = logits.argmax(-1, keepdim=True)
            steps[i] = perf() - start
        if args.gen_tokens:
            emit({"type": "iteration", "t_ns": clock(), "run": run, "warmup": warm, "phase": "decode",
                  "tokens": args.gen_tokens, "start_pos": args.prompt_tokens, "ns": sum(steps),
                  "step_ns": steps, **memory.snapshot()})
        count += 0 if warm else 1
    return count


# ExecuTorch's ScalarType codes (c10's numbering), as ``TensorInfo.dtype()`` returns them.
_SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                 7: "float64", 11: "bool", 15: "bfloat16"}


def _torch_dtype(code):
    import torch

    name = _SCALAR_TYPES.get(int(code))
    if name is None:
        raise UsageError(f"an input has ExecuTorch dtype code {int(code)}, which the generic workload cannot feed")
    return getattr(torch, name)


def _read_input(path: str, dtype, shape: tuple[int, ...], what: str):
    """One input file: raw little-endian bytes, exactly the tensor's size (protocol v1, ``--input``)."""
    import torch

    numel, itemsize = math.prod(shape), dtype.itemsize
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"--input {path} ({what}): cannot open: {err.strerror}") from None
    if len(data) != numel * itemsize:
        raise UsageError(f"--input {path} ({what}) must hold exactly {numel * itemsize} bytes ({numel} elements of "
                         f"{itemsize} bytes, raw little-endian), it holds {len(data)}")
    return torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape)


def run_generic(args: HarnessArgs, method, emit) -> int:
    """``runs`` x ``iterations`` invocations of one method with the given or seeded random inputs."""
    import torch

    gen = torch.Generator().manual_seed(args.seed)
    meta = method.metadata
    if args.inputs and len(args.inputs) != meta.num_inputs():
        raise UsageError(f"{len(args.inputs)} --input files given; method '{args.method}' takes {meta.num_inputs()} inputs")
    inputs = []
    for i in range(meta.num_inputs()):
        info = meta.input_tensor_meta(i)
        dtype = _torch_dtype(info.dtype())
        shape = tuple(info.sizes())
        if args.inputs:
            inputs.append(_read_input(args.inputs[i], dtype, shape, f"input {i} of method '{args.method}'"))
        elif dtype.is_floating_point:
            inputs.append(torch.randn(shape, generator=gen).to(dtype))
        else:
            inputs.append(torch.randint(0, 2, shape, generator=gen).to(dtype))
    execute, perf = method.execute, time.perf_counter_ns
    count = 0
    for index in range(args.warmup + args.runs):
        warm = index < args.warmup
        run = index if warm else index - args.warmup
        times = [0] * args.iterations
        for i in range(args.iterations):
            start = perf()
            execute(inputs)
            times[i] = perf() - start
        emit({"type": "iteration", "t_ns": clock(), "run": run, "warmup": warm, "phase": "forward",
              "tokens": 0, "ns": sum(times), "step_ns": times, **memory.snapshot()})
        count += 0 if warm else 1
    return count


class _ExecuTorch:
    """ExecuTorch's Python runtime (the executorch wheel)."""

    def __init__(self, args: HarnessArgs) -> None:
        from executorch import version as et_version
        from executorch.extension.pybindings import portable_lib

        self.args, self.version, self.pool = args, et_version.__version__, portable_lib
        if args.threads > 0:
            portable_lib._unsafe_reset_threadpool(args.threads)

    def load(self):
        from executorch.runtime import Runtime

        args = self.args
        self.program = Runtime.get().load_program(args.model, enable_etdump=bool(args.etdump))
        name = args.prefill_method if args.workload == "llm" else args.method
        method = self.program.load_method(name)
        if method is None:
            raise RuntimeError(f"the program has no method {name!r}")
        decode = None
        if args.workload == "llm" and args.decode_method != name:
            decode = self.program.load_method(args.decode_method)
            if decode is None:
                raise RuntimeError(f"the program has no method {args.decode_method!r}")
        return method, decode

    def threads(self) -> int:
        return self.pool._threadpool_get_thread_count()

    def finish(self) -> None:
        if self.args.etdump:
            self.program.write_etdump_result_to_file(self.args.etdump, self.args.etdump + ".debug")


class _LlamaCpp:
    """llama.cpp through llama-cpp-python on slmdeploy's libllama, with llama-bench's context
    (``slmdeploy.llamacpp.session``); the KV cache starts over at each prefill."""

    def __init__(self, args: HarnessArgs) -> None:
        from slmdeploy.llamacpp import source

        self.args, self.version = args, source.VERSION

    def load(self):
        from slmdeploy.llamacpp.session import GGUFMethod, Session

        args = self.args
        self.session = Session(args.model, args.max_seq_len or args.prompt_tokens + args.gen_tokens,
                               threads=args.threads, max_tokens=max(args.prompt_tokens, 1))
        return GGUFMethod(self.session), None

    def threads(self) -> int:
        return self.session.threads

    def finish(self) -> None:
        self.session.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"python_harness: {err}", file=sys.stderr)
        return EXIT_USAGE

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    writer = TraceWriter(args.trace)
    emit = writer.write
    phase = "load"
    try:
        # Before any runtime starts threads (the probe forks); written to the trace after the header.
        probe = bandwidth.probe(args.bandwidth_probe_mib, args.threads) if args.bandwidth_probe_mib else None
        runtime = _LlamaCpp(args) if args.runtime == "llamacpp" else _ExecuTorch(args)
        emit(header(args, runtime.version, args.runtime))
        if probe is not None:
            emit({"type": "bandwidth", "t_ns": clock(), **probe})
        # torch only takes the argmax here: its OpenMP workers would spin after each one and
        # steal the cores the runtime's own thread pool is about to use (-9% decode measured).
        import torch

        torch.set_num_threads(1)
        with telemetry.Sampler(emit, args.telemetry_interval_ms, clock):
            before = memory.snapshot()
            start = time.perf_counter_ns()
            try:
                method, decode = runtime.load()
            except Exception as err:
                emit({"type": "error", "t_ns": clock(), "phase": "load", "message": str(err).strip()[:2000]})
                print(f"python_harness: cannot load {args.model}: {err}", file=sys.stderr)
                return EXIT_LOAD_FAILED
            load_ns = time.perf_counter_ns() - start
            emit({"type": "load", "t_ns": clock(), "ns": load_ns, "rss_before_kib": before.get("rss_kib"),
                  "threads": runtime.threads(), **memory.snapshot()})
            phase = "run"
            if args.workload == "llm":
                count = run_llm(args, method, emit, decode)
            else:
                count = run_generic(args, method, emit)
        runtime.finish()
        emit({"type": "footer", "t_ns": clock(), "status": "complete", "runs": count,
              "wall_ns": clock(), **memory.snapshot()})
        return EXIT_OK
    except UsageError as err:  # a workload the program cannot run (e.g. --input of the wrong size)
        emit({"type": "error", "t_ns": clock(), "phase": "load", "message": str(err)})
        print(f"python_harness: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as err:
        emit({"type": "error", "t_ns": clock(), "phase": phase, "message": f"interrupted ({err})"})
        return EXIT_INTERRUPTED
    except Exception as err:  # the trace records it; the host decides what to show
        emit({"type": "error", "t_ns": clock(), "phase": phase, "message": f"{type(err).__name__}: {err}"[:2000]})
        print(f"python_harness: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_RUN_FAILED
    finally:
        writer.close()


if __name__ == "__main__":
    sys.exit(main())
