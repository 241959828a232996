"""Crash-safe resume: the study runner is killed with SIGKILL at many random moments (while
creating the directory, exporting, deploying, measuring, storing), and `study run --resume`
each time; at the end every job has exactly one complete run, the database one row per job,
nothing measured is lost and no harness is left running."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

from slmdeploy.analysis import load_runs
from slmdeploy.analysis.store import read_table
from slmdeploy.study import build_plan, load_study
from slmdeploy.study.journal import read_events
from slmdeploy.study.status import study_status

STUDY = """
name = "crash"
models = ["llama-tiny"]
targets = ["host-xnnpack"]
[devices]
specs = ["local"]
[[workloads]]
prompt = [4, 6, 8, 10, 12, 14]
gen = [2, 3, 4, 5]
[run]
runs = 2
warmup = 0
harness = "native"
telemetry_ms = 0
"""


def _runner(study_file: Path, study_dir: Path, resume: bool) -> subprocess.Popen:
    args = [sys.executable, "-m", "slmdeploy", "study", "run", "--dir", str(study_dir), "--json"]
    args += ["--resume"] if resume else [str(study_file)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())


def _starts(study_dir: Path) -> int:
    path = study_dir / "journal.jsonl"
    return path.read_bytes().count(b'"event":"start"') if path.is_file() else 0


def _harnesses_of(study_dir: Path) -> list[int]:
    """PIDs of harness processes still running one of this study's jobs."""
    names = [p.name for sub in ("runs", "attempts") if (study_dir / sub).is_dir() for p in (study_dir / sub).iterdir()]
    alive = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "slmdeploy_harness" in cmdline and any(n in cmdline for n in names):
                alive.append(int(proc.name))
    return alive


def test_kill_9_at_random_moments_then_resume_completes_exactly_the_missing_jobs(tiny_fp32, bundle, tmp_path):
    study_file = tmp_path / "crash.toml"
    study_file.write_text(textwrap.dedent(STUDY))
    study_dir = tmp_path / "study"
    jobs = build_plan(load_study(study_file)).jobs
    rng = random.Random(20261202)
    kills = 0
    for i in range(12):
        started = _starts(study_dir)
        proc = _runner(study_file, study_dir, resume=(study_dir / "journal.jsonl").exists())
        if i % 3 == 0:  # early: creating the directory, recovering, probing, exporting
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # during a measurement: a new attempt has started (however slow this machine is today)
            deadline = time.monotonic() + 120
            while _starts(study_dir) == started and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if (study_dir / "journal.jsonl").exists() and study_status(study_dir)["by_status"].get("complete") == len(jobs):
            break
    assert kills >= 10, "the runner finished before it could be killed often enough: make the study longer"
    final = _runner(study_file, study_dir, resume=(study_dir / "journal.jsonl").exists())
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err.decode()[-2000:]

    status = study_status(study_dir)
    assert status["by_status"] == {"complete": len(jobs)}
    runs = sorted((study_dir / "runs").iterdir())
    assert len(runs) == len(jobs)  # one run directory per job: its result
    assert Counter(json.loads((r / "run.json").read_text())["job_id"] for r in runs) == Counter(j.id for j in jobs)
    assert all(json.loads((r / "run.json").read_text())["status"] == "complete" for r in runs)
    table = read_table(study_dir / "results.duckdb")
    assert sorted(table["run_id"]) == [r.name for r in runs]  # the index agrees: no duplicate, no stale row
    frame = load_runs(study_dir)
    assert len(frame) == len(jobs) and (frame["decode_tps"] > 0).all() and set(frame["study"]) == {"crash"}

    events, torn = read_events(study_dir / "journal.jsonl")
    assert torn == 0  # torn lines were cut when the journal was reopened
    completions = Counter(e["job"] for e in events if e["event"] == "end" and e["status"] == "complete")
    assert completions == Counter(j.id for j in jobs)  # no job measured to completion twice
    # interrupted attempts are kept aside, each marked: never left "running"
    for attempt in (study_dir / "attempts").iterdir() if (study_dir / "attempts").is_dir() else []:
        assert json.loads((attempt / "run.json").read_text())["status"] in ("incomplete", "failed")
    assert _harnesses_of(study_dir) == []
    # kills that landed during a run were settled on resume: adopted (the harness finished on the device and
    # its trace was recovered) or kept aside as interrupted and measured again
    settled = [e for e in events if e["event"] == "end" and (e.get("adopted") or e["status"] == "interrupted")]
    assert settled, "no kill landed during a run: the test did not test resume of a measurement"


def test_a_run_killed_mid_measurement_is_kept_incomplete_and_measured_again(tiny_fp32, bundle, tmp_path):
    """The runner dies while the harness measures; resume stops that harness, pulls what it measured,
    keeps the attempt aside (incomplete, with its iterations) and measures the job again."""
    study_file = tmp_path / "long.toml"
    study_file.write_text(textwrap.dedent(STUDY).replace("prompt = [4, 6, 8, 10, 12, 14]\ngen = [2, 3, 4, 5]",
                                                         "prompt = 8\ngen = 200").replace("runs = 2", "runs = 60"))
    study_dir = tmp_path / "study"
    (job,) = build_plan(load_study(study_file)).jobs
    # the trace as the harness writes it, in this host's device work directory (pulled only at the end)
    on_device = Path(os.environ["SLMDEPLOY_CACHE"]) / "local-device" / "runs" / f"{job.name}-a1" / "trace.jsonl"
    shutil.rmtree(on_device.parent, ignore_errors=True)  # an earlier session's run of this same job
    proc = _runner(study_file, study_dir, resume=False)
    deadline = time.monotonic() + 300
    while not (on_device.is_file() and b'"iteration"' in on_device.read_bytes()):
        assert proc.poll() is None and time.monotonic() < deadline, "the runner ended before measuring"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    final = _runner(study_file, study_dir, resume=True)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err.decode()[-2000:]

    (kept,) = list((study_dir / "attempts").iterdir())
    meta = json.loads((kept / "run.json").read_text())
    assert meta["status"] == "incomplete" and kept.name.endswith("-a1")
    from slmdeploy.harness.trace import read_trace

    partial = read_trace(kept / "trace.jsonl")
    assert 1 <= len(list(partial.iterations())) < 120 and not partial.complete
    (result,) = list((study_dir / "runs").iterdir())
    assert result.name.endswith("-a2") and json.loads((result / "run.json").read_text())["status"] == "complete"
    assert _harnesses_of(study_dir) == []
