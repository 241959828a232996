"""What to measure: the workload every harness runs (protocol v1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from slmdeploy.errors import WorkloadError
from slmdeploy.export.manifest import Manifest


@dataclass
class Workload:
    prompt_tokens: int = 128
    gen_tokens: int = 64
    warmup: int = 1
    runs: int = 5
    threads: int = 0
    seed: int = 0
    iterations: int = 10  # generic workload: invocations per run
    telemetry_interval_ms: int = 500
    inputs: tuple[str, ...] = ()  # generic workload: one .npy or raw .bin per method input (else seeded random)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self, manifest: Manifest | None = None) -> None:
        """Reject, before any work, impossible values; with ``manifest``, also what the artifact cannot run."""
        if self.runs < 1:
            raise WorkloadError(f"--runs must be at least 1, got {self.runs}.")
        if self.warmup < 0 or self.threads < 0:
            raise WorkloadError("--warmup and --threads cannot be negative.")
        if self.iterations < 1:
            raise WorkloadError(f"--iterations must be at least 1, got {self.iterations}.")
        if self.telemetry_interval_ms < 0:
            raise WorkloadError(f"--telemetry-ms cannot be negative (0 turns telemetry off), got {self.telemetry_interval_ms}.")
        if manifest is None or manifest.llm is None:
            return
        if self.prompt_tokens < 1 or self.gen_tokens < 0:
            raise WorkloadError("--prompt must be at least 1 token and --gen at least 0.")
        fixed = manifest.llm.prefill_seq_len
        if not manifest.llm.dynamic_prefill and fixed is not None and self.prompt_tokens != fixed:
            raise WorkloadError(
                f"this {manifest.runtime} artifact's prefill takes exactly {fixed} tokens (a static shape), "
                f"not --prompt {self.prompt_tokens}; pass --prompt {fixed}, or re-export with the target option "
                f"prefill_len = {self.prompt_tokens} (see docs/targets.md)."
            )
        total = self.prompt_tokens + self.gen_tokens
        limit = manifest.llm.max_seq_len
        if total > limit:
            raise WorkloadError(
                f"prompt {self.prompt_tokens} + generation {self.gen_tokens} = {total} tokens exceed the artifact's "
                f"max sequence length {limit}; lower --prompt/--gen or export with --max-seq-len {total}."
            )
