"""Shared by the export tests: the CI models, the export outcome, and the support-matrix
recorder whose JSON ``scripts/gen_support_matrix.py`` renders.

Each test that exports records what happened (status + numbers) in a cell keyed by target
and model family, once its own checks have run (``SupportMatrix.checking``: a failed check
is a failed cell); at the end of the session the cells are merged into the results file
(``docs/support-matrix.json``, or ``$SLMDEPLOY_SUPPORT_RESULTS``), so a default run and a
``pytest -m slow`` run both contribute, and cells of targets or families no longer shipped
are dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import torch

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(os.environ.get("SLMDEPLOY_SUPPORT_RESULTS", REPO / "docs" / "support-matrix.json"))
SEQ = 64  # max_seq_len of every test export: small caches, fast verification
CROSS_MODEL = "llama-micro"  # the model every shipped target exports in the default run

# family -> CI-size zoo model of that family
FAMILIES = {
    "Llama": "llama-micro",
    "Qwen2/2.5": "qwen2-tiny",
    "Qwen3": "qwen3-tiny",
    "Gemma": "gemma-tiny",
    "Gemma2": "gemma2-tiny",
    "Phi-3": "phi3-tiny",
    "GPT-NeoX (Pythia)": "pythia-tiny",
    "SmolLM": "smollm-tiny",
}
FAMILY_OF = {model: family for family, model in FAMILIES.items()}
MODULE_FAMILIES = ("nn.Module (CNN)",)  # plain modules the tests export next to the decoder families


class MLP(torch.nn.Module):
    """A small non-LLM model whose linear layers every quantizer takes (64 inputs: int4 groups of 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(64, 64), torch.nn.Linear(64, 16)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Outcome:
    """An export's artifact, or the error it raised."""

    def __init__(self, artifact=None, error: Exception | None = None) -> None:
        self.artifact, self.error = artifact, error

    def get(self):
        if self.error is not None:
            raise self.error
        return self.artifact


def cell_status(manifest) -> str:
    v = manifest.verification
    if v.get("status") == "passed":
        return "verified"
    if v.get("status") == "not verified on this host":
        return "spec-checked" if v.get("spec_check", {}).get("status") == "passed" else "exported"
    return "failed"


class SupportMatrix:
    def __init__(self) -> None:
        self.cells: dict[str, dict] = {}

    def record(self, target, family: str, model: str, node: str, outcome: Outcome | None = None, status: str | None = None) -> None:
        cell = {
            "target": target.name, "runtime": target.runtime, "delegates": list(target.delegates),
            "quantization": target.quantization, "family": family, "model": model, "test": node,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        }
        if outcome is not None and outcome.error is not None:
            cell.update(status=status or "failed", detail=str(outcome.error))
        elif outcome is not None:
            m = outcome.artifact.manifest
            v, d = m.verification, m.delegation
            cell.update(status=status or cell_status(m), versions={k: m.tools.get(k) for k in ("executorch", "coremltools", "litert-torch",
                                                                                             "llama-cpp-python")})
            keep = ("relative_diff", "top1_agreement", "top1_agreement_vs_quantized_eager", "relative_diff_vs_quantized_eager", "reason")
            cell["verification"] = {k: v[k] for k in keep if k in v}
            cell["delegated_fraction"] = d.get("delegated_fraction")
            cell["fallback_ops"] = sorted(d.get("fallback_ops", {}))
            cell["size_bytes"] = m.model_file.size
        else:
            cell["status"] = status or "failed"
        self.cells[f"{target.name}|{family}"] = cell

    @contextlib.contextmanager
    def checking(self, target, family: str, model: str, node: str, outcome: Outcome, status: str | None = None) -> Iterator[None]:
        """Record the cell after the test's checks in the block: passed, as the outcome says; a
        check that failed, as a failure naming it (never the export's own ✅)."""
        try:
            yield
        except Exception as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            failure = outcome.error or AssertionError(f"check failed: {first}")
            self.record(target, family, model, node, Outcome(error=failure), status="failed")
            raise
        self.record(target, family, model, node, outcome, status)

    def write(self) -> None:
        if not self.cells:
            return
        existing = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"cells": {}}
        existing["cells"].update(self.cells)
        existing["cells"] = dict(sorted(shipped_only(existing["cells"], shipped_targets()).items()))
        existing["generated_by"] = "pytest tests/export (see scripts/gen_support_matrix.py)"
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        tmp = RESULTS.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(existing, indent=1) + "\n")
        tmp.replace(RESULTS)


def shipped_targets() -> set[str]:
    from slmdeploy.export import list_targets

    return {t.name for t in list_targets()}


def shipped_only(cells: dict[str, dict], targets: set[str]) -> dict[str, dict]:
    """The cells of shipped targets and tested families: a removed target or family leaves the matrix."""
    families = set(FAMILIES) | set(MODULE_FAMILIES)
    return {k: c for k, c in cells.items() if c["target"] in targets and c["family"] in families}


def export_in_worker(model: str, target: str, out: str) -> str | None:
    """Export one pair in a worker process (the conftest's warm-up); an error is left for the test."""
    import torch

    from slmdeploy.errors import SlmdeployError
    from slmdeploy.export import export

    torch.set_num_threads(1)  # the other worker has the other core
    try:
        export(model, target, out, max_seq_len=SEQ, progress=False)
    except SlmdeployError as err:  # the test re-raises it in-process
        return str(err)
    return None
