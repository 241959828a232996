"""Fixtures for the export tests: one export per (model, target) per session, and the
support-matrix recorder (see export_matrix.py).

Exports are CPU-bound and mostly single-threaded Python (graph lowering), so the first test
that needs one exports *every* (model, target) pair the session has collected, in
``SLMDEPLOY_TEST_EXPORT_WORKERS`` processes (default: the CPU count, at most 2), into the
shared content cache; the tests' own ``export()`` calls are then cache hits. Each pair is
still exported exactly once, and a pair that fails in a worker is simply exported (and fails,
with its real error) in the test.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the test modules import export_matrix
from export_matrix import CROSS_MODEL, SEQ, Outcome, SupportMatrix, export_in_worker  # noqa: E402

# Rough export cost in seconds (llama-micro, idle 2-core host): longest first packs the workers.
COST = {"vulkan": 45, "8da4w": 35, "xnnpack": 22, "coreml": 12, "portable": 10, "tflite": 15, "gguf": 15}


def _cost(pair: tuple[str, str]) -> int:
    target = pair[1]
    return max((v for k, v in COST.items() if k in target), default=10)


def _collected_pairs(items) -> list[tuple[str, str]]:
    """The (model, target) pairs the collected tests will export."""
    pairs = set()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "export_once" not in getattr(item, "fixturenames", ()):
            continue
        if "model" in params and "target" in params:
            pairs.add((params["model"], params["target"]))
        elif "name" in params:
            pairs.add((CROSS_MODEL, params["name"]))
    return sorted(pairs, key=_cost, reverse=True)


@pytest.fixture(scope="session")
def export_once(request, tmp_path_factory):
    """``export_once(model, target) -> Outcome``: each pair is exported once per session."""
    from slmdeploy.errors import SlmdeployError
    from slmdeploy.export import export

    done: dict[tuple[str, str], Outcome] = {}
    root = tmp_path_factory.mktemp("export-matrix")
    workers = int(os.environ.get("SLMDEPLOY_TEST_EXPORT_WORKERS", min(2, os.cpu_count() or 1)))
    pairs = _collected_pairs(request.session.items)
    if workers > 1 and len(pairs) > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            jobs = [pool.submit(export_in_worker, m, t, str(root / f"warm-{m}-{t}")) for m, t in pairs]
            for job in jobs:
                job.exception()  # waits; any failure is reproduced, with its real error, by the test itself

    def run(model: str, target: str) -> Outcome:
        key = (model, target)
        if key not in done:
            try:
                done[key] = Outcome(export(model, target, root / f"{model}-{target}", max_seq_len=SEQ, progress=False))
            except SlmdeployError as err:
                done[key] = Outcome(error=err)
        return done[key]

    return run


@pytest.fixture(scope="session")
def support_matrix():
    matrix = SupportMatrix()
    yield matrix
    matrix.write()
