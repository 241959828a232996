"""Fixtures for the report tests: synthetic run directories and a helper that checks trace JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from slmdeploy.report.synthetic import write_runs


@pytest.fixture(scope="module")
def synthetic_runs(tmp_path_factory) -> Path:
    """60 runs over 48 configurations: some configurations have 2 runs, most one."""
    root = tmp_path_factory.mktemp("synthetic") / "runs"
    write_runs(root, 60, prompt=16, gen=8, runs=3)
    return root


def x_slices(doc: dict) -> list[dict]:
    return [e for e in doc["traceEvents"] if e["ph"] == "X"]


def check_nesting(slices: list[dict]) -> int:
    """Every slice on a thread lies inside the slice it starts in (µs, 1 ns slack); returns the max depth."""
    depth = 0
    by_track = defaultdict(list)
    for s in slices:
        by_track[(s["pid"], s["tid"])].append(s)
    for track in by_track.values():
        stack: list[tuple[float, float, str]] = []
        for s in sorted(track, key=lambda e: (e["ts"], -e["dur"])):
            start, end = s["ts"], s["ts"] + s["dur"]
            while stack and start >= stack[-1][1] - 1e-3:
                stack.pop()
            if stack:
                assert start >= stack[-1][0] - 1e-3 and end <= stack[-1][1] + 1e-3, (s, stack[-1])
            stack.append((start, end, s["name"]))
            depth = max(depth, len(stack))
    return depth


def load(path: Path) -> dict:
    return json.loads(path.read_text())
