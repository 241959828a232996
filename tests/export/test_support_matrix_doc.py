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
    return [[re.sub(r"[^✅🔷⬜⛔🚫❌·]", "", c) or c.strip() for c in row.strip("|").split("|")] for row in rows]


def test_the_committed_doc_matches_the_committed_results():
    results = json.loads((REPO / "docs" / "support-matrix.json").read_text())
    committed = (REPO / "docs" / "support-matrix.md").read_text()
    assert _statuses(gen.render(results)) == _statuses(committed), "run scripts/gen_support_matrix.py"
    assert "do not edit" in committed


def test_every_shipped_target_is_in_the_committed_matrix_and_nothing_else():
    from export_matrix import FAMILIES, MODULE_FAMILIES, shipped_targets

    cells = json.loads((REPO / "docs" / "support-matrix.json").read_text())["cells"].values()
    targets = shipped_targets()
    assert {c["target"] for c in cells} == targets, "run pytest tests/export, then scripts/gen_support_matrix.py"
    assert {c["family"] for c in cells} <= set(FAMILIES) | set(MODULE_FAMILIES)
    rows = {line.split("|")[1].strip() for line in (REPO / "docs" / "support-matrix.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| ---", "| target"))}
    assert rows == targets


def test_cells_of_removed_targets_and_families_are_dropped():
    from export_matrix import shipped_only

    cells = {"a|Llama": _cell("a", "Llama", "verified"), "gone|Llama": _cell("gone", "Llama", "verified"),
             "a|Falcon": _cell("a", "Falcon", "failed")}
    assert list(shipped_only(cells, {"a"})) == ["a|Llama"]


def test_a_failed_check_records_a_failed_cell(tmp_path):
    """The cell is written after the test's checks: a check that fails is ❌, not the export's ✅."""
    import pytest
    from export_matrix import Outcome, SupportMatrix

    from slmdeploy.export import load_target

    class Passed:  # an artifact whose own verdict says "passed"
        manifest = type("M", (), {"verification": {"status": "passed"}, "delegation": {}, "tools": {},
                                  "model_file": type("F", (), {"size": 1})()})()

    matrix, target = SupportMatrix(), load_target("host-xnnpack")
    with pytest.raises(AssertionError):
        with matrix.checking(target, "Llama", "llama-micro", "t", Outcome(Passed())):
            assert 1 == 2, "delegation is not what it should be"
    cell = matrix.cells["host-xnnpack|Llama"]
    assert cell["status"] == "failed" and "delegation is not what it should be" in cell["detail"]
    with matrix.checking(target, "Llama", "llama-micro", "t", Outcome(Passed())):
        pass
    assert matrix.cells["host-xnnpack|Llama"]["status"] == "verified"
