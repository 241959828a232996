"""``load_runs``: run directories and result databases -> one pandas DataFrame, a row per run."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from slmdeploy.analysis.records import is_run_dir, record
from slmdeploy.analysis.store import read_table
from slmdeploy.analysis.validity import DEFAULT, Thresholds, apply
from slmdeploy.errors import SlmdeployError


def _expand(path: Path) -> pd.DataFrame:
    if path.is_file() and path.suffix == ".duckdb":
        return read_table(path)
    if path.is_dir() and is_run_dir(path):
        return pd.DataFrame([record(path)])
    if path.is_dir() and (path / "journal.jsonl").is_file() and (path / "runs").is_dir():
        path = path / "runs"  # a study directory: runs/ holds one run per job (slmdeploy.study)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_dir() and is_run_dir(p))
        if found:
            return pd.DataFrame([record(p) for p in found])
    raise SlmdeployError(
        f"{path} is neither a run directory (with run.json), a folder of runs, a study directory, "
        "nor a results .duckdb file."
    )


def load_runs(paths: str | Path | Iterable[str | Path], thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Every run under ``paths``; a run found twice (directory and database) appears once.

    Each row carries ``valid`` and ``invalid_reasons`` (``analysis.validity``), recomputed here
    with ``thresholds`` (default: ``validity.DEFAULT``) so runs stored by older versions get one too.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = [f for f in (_expand(Path(path)) for path in paths) if not f.empty]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0] if frames else pd.DataFrame()
    if frame.empty:
        return frame
    frame = frame.drop_duplicates(subset="run_id", keep="last")
    if "started_at" in frame.columns:  # (a hand-edited run.json may hold any type there)
        frame = frame.sort_values("started_at", kind="stable", key=lambda s: s.astype(str))
    return apply(frame.reset_index(drop=True), thresholds or DEFAULT)
