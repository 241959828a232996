"""docs/support-matrix.md is rendered from the test results, never edited by hand."""

from __future__ import annotations

import importlib.util
import json
import re

from export_matrix import REPO

spec = importlib.util.spec_from_file_location("gen_support_matrix", REPO / "scripts" / "gen_support_matrix.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)


def _cell(target, family, status, **extra):
    return {"target": target, "runtime": "tflite", "delegates": ["xnnpack"], "quantization": "8da4w", "family": family,
            "model": "m", "test": "t", "date": "2026-11-25", "status": status, **extra}


def test_cells_render_with_their_status_and_numbers():
    results = {"cells": {
        "a|Llama": _cell("a", "Llama", "verified", verification={"top1_agreement_vs_quantized_eager": 0.9375}),
        "a|Qwen3": _cell("a", "Qwen3", "failed", detail="boom"),
        "b|Llama": _cell("b", "Llama", "toolchain missing", detail="QNN_SDK_ROOT is not set"),
    }}
    text = gen.render(results)
    row_a = next(line for line in text.splitlines() if line.startswith("| a |"))
    assert row_a == "| a | tflite | xnnpack | 8da4w | ✅ top-1 0.94 | ❌ |"
    row_b = next(line for line in text.splitlines() if line.startswith("| b |"))
    assert row_b.endswith("| ⛔ | · |")
    assert "toolchain missing: QNN_SDK_ROOT is not set" in text and "failed: boom" in text


def _statuses(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[re.sub(r"[^✅🔷⬜⛔❌·]", "", c) or c.strip() for c in row.strip("|").split("|")] for row in rows]


def test_the_committed_doc_matches_the_committed_results():
    results = json.loads((REPO / "docs" / "support-matrix.json").read_text())
    committed = (REPO / "docs" / "support-matrix.md").read_text()
    assert _statuses(gen.render(results)) == _statuses(committed), "run scripts/gen_support_matrix.py"
    assert "do not edit" in committed
