"""examples/analysis.py, the documented Python analysis script, on a synthetic study."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from slmdeploy.analysis import load_runs, summarize_rows
from slmdeploy.report.synthetic import write_runs

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "analysis.py"


def _example():
    spec = importlib.util.spec_from_file_location("example_analysis", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_analysis_example_fits_decode_speed_against_model_bytes(tmp_path, capsys):
    example = _example()
    write_runs(tmp_path / "runs", 96)  # every configuration twice
    assert example.main([str(tmp_path / "runs"), "--figure", str(tmp_path / "decode.png")]) == 0
    out = capsys.readouterr().out
    assert "96 runs" in out and "in 48 rows" in out
    rows = summarize_rows(load_runs(tmp_path / "runs"))
    rows["model_size"] = rows["model"].map(load_runs(tmp_path / "runs").groupby("model")["model_size"].first())
    fits = example.scaling_fits(rows)
    assert fits and all(slope < 0 for slope, _ in fits.values())  # bigger models decode slower
    assert (tmp_path / "decode.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
