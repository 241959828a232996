"""Harness protocol v1: arguments (the same for every harness) and exit codes."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

PROTOCOL = "slmdeploy.trace/1"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_LOAD_FAILED = 3
EXIT_RUN_FAILED = 4
EXIT_INTERRUPTED = 130


# Options added after v1 shipped: left off the command line at their default, so a harness
# built before them still runs every invocation that does not ask for them.
OMITTED_AT_DEFAULT = frozenset({"bandwidth_probe_mib"})


@dataclass
class HarnessArgs:
    """One harness invocation. ``argv()`` renders the documented command line."""

    model: str
    trace: str
    runtime: str = "executorch"
    workload: str = "llm"  # "llm" | "generic"
    prompt_tokens: int = 128
    gen_tokens: int = 64
    max_seq_len: int = 0
    vocab_size: int = 0
    prefill_method: str = "forward"
    decode_method: str = "forward"
    method: str = "forward"
    iterations: int = 10
    warmup: int = 1
    runs: int = 5
    threads: int = 0
    seed: int = 0
    telemetry_interval_ms: int = 500
    run_id: str = ""
    artifact_sha256: str = ""
    etdump: str = ""
    inputs: list[str] = field(default_factory=list)  # generic: one raw file per input (``--input``, repeated)
    bandwidth_probe_mib: int = 0  # > 0: measure memory bandwidth first (a ``bandwidth`` event; docs/roofline.md)

    def argv(self) -> list[str]:
        args: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "inputs":
                args += [a for path in value for a in ("--input", str(path))]
            elif f.name in OMITTED_AT_DEFAULT and value == f.default:
                continue
            elif value not in ("", None):
                args += [f"--{f.name.replace('_', '-')}", str(value)]
        return args
