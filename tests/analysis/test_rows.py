"""One row definition (analysis/rows.py): the report's rows and the gate's rows are the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slmdeploy.analysis.gate import compare, group_rows
from slmdeploy.analysis.rows import pooled_rows, row_key
from slmdeploy.analysis.runs import load_runs
from slmdeploy.analysis.summary import summarize_rows
from slmdeploy.analysis.synthetic import write_run

WORKLOAD = {"prompt_tokens": 16, "gen_tokens": 8, "warmup": 1, "threads": 0}


@pytest.fixture
def frame(tmp_path):
    """Two runs that differ only in how they were measured (run count, telemetry period), and one
    on another phone."""
    write_run(tmp_path, "five", started_at="2026-12-01T10:00:01", runs=5,
              meta={"workload": {**WORKLOAD, "runs": 5, "telemetry_interval_ms": 500}})
    write_run(tmp_path, "ten", started_at="2026-12-01T10:00:02", runs=10, jitter=0.05,
              meta={"workload": {**WORKLOAD, "runs": 10, "telemetry_interval_ms": 100}})
    write_run(tmp_path, "other-phone", started_at="2026-12-01T10:00:03", runs=5,
              meta={"device": "adb:XYZ", "device_model": "Pixel 8", "workload": {**WORKLOAD, "runs": 5}})
    return load_runs(tmp_path)


def test_summarize_rows_and_the_gate_agree_on_the_rows(frame):
    assert frame["workload"].nunique() == 3 and frame["valid"].all()
    rows = summarize_rows(frame)
    gate = group_rows(frame)
    assert list(rows.run_ids) == [["five", "ten"], ["other-phone"]]  # one row, then the other device
    assert [r.run_ids for r in gate.values()] == list(rows.run_ids)
    assert list(gate) == [row_key(r) for r in frame.drop_duplicates("device").to_dict("records")]
    samples = frame.set_index("run_id")["samples"].map(json.loads)
    for row, (key, pooled) in zip(rows.itertuples(), gate.items()):
        expected = [v for run in row.run_ids for v in samples[run]["decode_tps"]]  # in run order
        assert pooled.values["decode_tps"] == pytest.approx(expected)
        assert row.decode_tps_n == len(expected) and row.decode_tps_median == pytest.approx(np.median(expected))
    assert rows.decode_tps_n.tolist() == [15, 5]
    assert json.loads(next(iter(gate)).workload) == {"gen_tokens": 8, "prompt_tokens": 16}
    # the gate compares those same rows: a 5-run and a 10-run bench are one configuration
    result = compare(frame, frame, metrics=["decode_tps"])
    assert result.matched == 2 and not result.only_baseline and not result.only_candidate


def test_pooled_rows_keeps_every_run_but_pools_only_the_used(frame):
    use = (frame["run_id"] != "ten").tolist()
    [one, other] = pooled_rows(frame, ["decode_tps", "forward_ms"], use=use)
    assert (one.members, one.used, other.members, other.used) == ([0, 1], [0], [2], [2])
    assert len(one.values["decode_tps"]) == 5 and len(one.values["forward_ms"]) == 0
    same_model = pooled_rows(frame.assign(device=["adb:A", "adb:B", "adb:C"], device_model="Pixel 8"),
                             device_by="model")
    assert len(same_model) == 1 and same_model[0].key.device == "Pixel 8"
