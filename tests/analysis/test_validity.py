"""The validity verdict (analysis/validity.py): each rule alone turns a valid run invalid, with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from slmdeploy.analysis.records import record
from slmdeploy.analysis.runs import load_runs
from slmdeploy.analysis.store import read_table, store_runs
from slmdeploy.analysis.synthetic import write_run
from slmdeploy.analysis.validity import Thresholds, apply, verdict

COOL = {"cpu_khz": {"cpu0": 2_000_000}, "cpu_max_khz": {"cpu0": 2_000_000}, "thermal_mc": {"cpu": 40_000}}
CAPPED = {"cpu_khz": {"cpu0": 1_600_000}, "cpu_max_khz": {"cpu0": 1_600_000}, "thermal_mc": {"cpu": 47_000}}


def test_the_base_run_is_valid(tmp_path):
    row = record(write_run(tmp_path, "base", telemetry=[COOL, COOL]))
    assert row["valid"] is True and row["invalid_reasons"] == ""
    assert row["measured_s"] == pytest.approx(5 * (0.04 + 8 * 0.03), rel=0.05)


RULES = {
    "too few measured runs": (dict(runs=2, prefill_ns=400_000_000), {}, "2 measured runs (at least 3 needed)"),
    "too short": (dict(prefill_ns=1_000_000, step_ns=1_000_000), {}, "0.045 s measured in all (at least 1 s needed)"),
    "throttled": (dict(telemetry=[COOL, CAPPED]), {}, "throttling detected (a core's frequency cap fell to 80%)"),
    "started hot": ({}, {"cooldown": [{"below_c": 40.0, "start_c": 52.0, "end_c": 45.5, "waited_s": 600, "reached": False}]},
                    "started at 45.5 °C, not below the cooldown limit 40 °C"),
    "stray harness": ({}, {"strays_killed": 2}, "2 stray harnesses running on the device at the start (killed)"),
    "incomplete": (dict(footer=False), {"status": "incomplete"}, "run is incomplete, not complete"),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_alone_makes_a_run_invalid(rule, tmp_path):
    trace_kwargs, meta, reason = RULES[rule]
    row = record(write_run(tmp_path, rule.replace(" ", "-"), meta=meta, **{"telemetry": [COOL, COOL], **trace_kwargs}))
    assert row["valid"] is False and row["invalid_reasons"] == reason


def test_a_cooldown_reached_and_no_strays_keep_the_run_valid(tmp_path):
    meta = {"cooldown": [{"below_c": 40.0, "start_c": 52.0, "end_c": 48.0, "waited_s": 1, "reached": False},
                         {"below_c": 40.0, "start_c": 45.0, "end_c": 39.5, "waited_s": 30, "reached": True}],
            "strays_killed": 0}
    row = record(write_run(tmp_path, "cooled", meta=meta))
    assert row["start_temp_c"] == 39.5 and row["cooldown_below_c"] == 40.0  # the last wait, before the kept attempt
    assert row["valid"] is True


def test_reasons_accumulate_and_thresholds_are_parameters(tmp_path):
    row = record(write_run(tmp_path, "two", runs=2, meta={"strays_killed": 1}))
    assert row["invalid_reasons"].split("; ") == [
        "2 measured runs (at least 3 needed)", "0.571 s measured in all (at least 1 s needed)",
        "1 stray harness running on the device at the start (killed)"]
    lenient = verdict({**row, "strays_killed": 0}, Thresholds(min_runs=2, min_measured_s=0.5))
    assert lenient.valid and lenient.reasons == ()


def test_runs_stored_without_a_verdict_get_one_when_loaded(tmp_path):
    """An older database has no valid column: load_runs computes it from the fields it has."""
    old = pd.DataFrame([{"run_id": "a", "status": "complete", "measured_runs": 5, "measured_s": 3.0},
                        {"run_id": "b", "status": "complete", "measured_runs": 5, "thermal_throttled": True}])
    judged = apply(old)
    assert list(judged.valid) == [True, False] and judged.invalid_reasons[1] == "throttling detected"


def test_the_verdict_survives_the_results_database(tmp_path):
    runs = tmp_path / "runs"
    good, short = write_run(runs, "good"), write_run(runs, "short", runs=2)
    db = tmp_path / "results.duckdb"
    store_runs([good, short], db)
    stored = read_table(db).set_index("run_id")
    assert bool(stored.loc["good", "valid"]) and not bool(stored.loc["short", "valid"])
    loaded = load_runs(db).set_index("run_id")
    assert loaded.loc["short", "invalid_reasons"].startswith("2 measured runs")
    assert loaded.loc["good", "valid"] == True  # noqa: E712 (numpy bool)


def test_kill_strays_counts_the_harnesses_it_killed(tmp_path):
    """bench records this count as run.json strays_killed (bench/api.py)."""
    from slmdeploy.devices.clean import kill_strays
    from slmdeploy.devices.local import LocalDevice

    device = LocalDevice(tmp_path / "dev")
    run = Path(device.workdir) / "runs" / "20990101-stray"
    run.mkdir(parents=True)
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--run-id", run.name])
    try:
        (run / "harness.pid").write_text(f"{stray.pid}\n")
        assert kill_strays(device) == 1
        stray.wait(timeout=10)
        assert kill_strays(device) == 0  # nothing left to kill
    finally:
        if stray.poll() is None:
            os.kill(stray.pid, 9)
            stray.wait()


@pytest.mark.parametrize("meta, reason", [
    ({"strays_killed": "lots"}, 'run.json: strays_killed is not a non-negative integer ("lots")'),
    ({"cooldown": "hot"}, 'run.json: cooldown is not a list of objects ("hot")'),
    ({"model": ["a"]}, 'run.json: model is not a string (["a"])'),
    ({"status": 3}, "run.json: status is not a string (3)"),
])
def test_a_run_json_field_of_the_wrong_type_flags_the_run(meta, reason, tmp_path):
    row = record(write_run(tmp_path, "odd", meta=meta))
    assert row["valid"] is False and row["invalid_reasons"] == reason
    assert "model" not in row or isinstance(row["model"], str)  # never used as an identity
