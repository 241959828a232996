"""The study commands as a user or a CI job drives them: plan, run (live table or JSON events),
status, resume, and bad input refused in one line before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from slmdeploy.analysis import load_runs

STUDY = """
name = "cli"
models = ["llama-tiny"]
targets = ["host-xnnpack"]
[devices]
specs = ["local"]
[[devices.device]]
spec = "adb-direct:127.0.0.1:1"
labels = { shelf = "nowhere" }
[[workloads]]
prompt = [4, 8]
gen = 2
[run]
runs = 1
warmup = 0
harness = "native"
telemetry_ms = 0
[cooldown]
pause_s = 0.5
"""


def slmdeploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slmdeploy", *args], capture_output=True, text=True, timeout=600,
                          env=os.environ.copy())


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "cli.toml"
    path.write_text(textwrap.dedent(STUDY))
    return path


def test_plan_lists_jobs_per_device_and_says_the_estimate_is_coarse(study_file):
    out = slmdeploy("study", "plan", str(study_file), "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert [d["spec"] for d in plan["devices"]] == ["local", "adb-direct:127.0.0.1:1"]
    assert plan["devices"][1]["labels"] == {"shelf": "nowhere"}
    assert len(plan["jobs"]) == 4 and plan["estimated_s"] > 0
    text = slmdeploy("study", "plan", str(study_file), "--jobs")
    assert "2 workloads" in text.stdout and "a coarse guide" in text.stdout and "pp8+tg2" in text.stdout


def test_run_emits_json_events_exits_3_when_a_device_is_offline_and_resume_is_a_no_op(tiny_fp32, bundle, study_file,
                                                                                     tmp_path):
    out = slmdeploy("study", "run", str(study_file), "--dir", str(tmp_path / "s"), "--json")
    assert out.returncode == 3, out.stderr  # two jobs could not run: their device is offline
    events = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "device_offline" and "plan" in kinds and kinds[-1] == "study_end"
    ends = [e for e in events if e["event"] == "job_end"]
    assert [e["status"] for e in ends] == ["complete", "complete"] and all(e["wall_s"] > 0 for e in ends)
    starts = [e for e in events if e["event"] == "job_start"]
    assert starts[1]["t"] - ends[0]["t"] >= 0.5  # the device rested pause_s between its runs
    end = events[-1]
    assert (end["jobs"], end["complete"], len(end["not_run"])) == (4, 2, 2)
    frame = load_runs(tmp_path / "s")
    assert len(frame) == 2 and set(frame["study"]) == {"cli"} and (frame["decode_tps"] > 0).all()

    status = json.loads(slmdeploy("study", "status", str(tmp_path / "s"), "--json").stdout)
    assert status["by_status"] == {"complete": 2, "not run": 2}
    assert {d["spec"]: d["state"] for d in status["devices"]}["adb-direct:127.0.0.1:1"] == "offline"

    again = slmdeploy("study", "run", "--resume", "--dir", str(tmp_path / "s"))
    assert again.returncode == 3  # still offline; the complete jobs were not run again
    assert "2 of 4 jobs complete" in again.stdout and "not run" in again.stdout
    assert len(list((tmp_path / "s" / "runs").iterdir())) == 2


@pytest.mark.parametrize("text, message", [
    ('name = "x"\nmodels = ["llama-tiny"]\ntargets = ["host-xnnpack"]\n[devices]\nspecs = ["local"]\n[run]\nruns = -1\n',
     r"run.runs must be at least 1, got -1"),
    ('name = "x"\nmodels = ["llama-tiny"\n', r"is not valid TOML"),
    ('name = "x"\nmodels = ["llama-tiny"]\ntargets = ["nope"]\n[devices]\nspecs = ["local"]\n',
     r"targets\[0\]: unknown target 'nope'"),
])
def test_bad_study_files_are_one_line_errors_with_exit_2_and_nothing_written(tmp_path, text, message):
    import re

    path = tmp_path / "bad.toml"
    path.write_text(text)
    for args in (["study", "plan", str(path)], ["study", "run", str(path), "--dir", str(tmp_path / "out")]):
        out = slmdeploy(*args)
        assert out.returncode == 2 and re.search(message, out.stderr), out.stderr
        assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists()


def test_a_study_directory_is_not_started_twice_nor_resumed_with_another_file(tiny_fp32, bundle, study_file, tmp_path):
    study_dir = tmp_path / "s"
    slmdeploy("study", "run", str(study_file), "--dir", str(study_dir), "--json")
    again = slmdeploy("study", "run", str(study_file), "--dir", str(study_dir))
    assert again.returncode == 2 and "already holds a study; add --resume" in again.stderr
    other = tmp_path / "other.toml"
    other.write_text(study_file.read_text().replace("prompt = [4, 8]", "prompt = [4, 16]"))
    changed = slmdeploy("study", "run", str(other), "--resume", "--dir", str(study_dir))
    assert changed.returncode == 2 and "differs from the study" in changed.stderr
