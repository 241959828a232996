"""bench checks its arguments before any work: one-line errors, nothing exported, no run directory left.

The artifact is given as a model name in an empty export cache, so a check that came after
the work would start an export (and leave the cache directory behind).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmdeploy.cli.main import cli

BAD = {
    "timeout 0": (["--timeout", "0"], "--timeout must be a positive number"),
    "timeout negative": (["--timeout", "-5"], "--timeout must be a positive number"),
    "telemetry negative": (["--telemetry-ms", "-1"], "--telemetry-ms cannot be negative"),
    "iterations 0": (["--iterations", "0"], "--iterations must be at least 1"),
    "retries negative": (["--retries", "-1"], "--retries cannot be negative"),
    "runs 0": (["--runs", "0"], "--runs must be at least 1"),
    "empty device": (["--device", ""], "empty device name"),
    "blank device": (["--device", "  "], "empty device name"),
    "adb-direct port": (["--device", "adb-direct:127.0.0.1:70000"], "not a TCP port (1-65535)"),
    "adb network serial port": (["--device", "adb:192.168.1.20:0"], "not a TCP port (1-65535)"),
    "ssh port": (["--device", "ssh:pi@board:99999"], "not a TCP port (1-65535)"),
    "ssh port not a number": (["--device", "ssh:pi@board:22x"], "not a TCP port (1-65535)"),
}


def _bench(args: list[str], runs: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["bench", "llama-tiny", "--runs-dir", str(runs), *args])
    return result.exit_code, result.stderr


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize("case", BAD)
def test_bad_arguments_are_refused_before_any_work(case, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_CACHE", str(tmp_path / "cache"))
    args, message = BAD[case]
    code, stderr = _bench(args, tmp_path / "runs")
    assert code == 2 and message in _one_line(stderr)
    assert not (tmp_path / "cache").exists()  # no export started, no device work
    assert not (tmp_path / "runs").exists()  # no run directory, no database


@pytest.mark.parametrize("kind", ["not a database", "a directory", "under a file"])
def test_an_unusable_db_is_found_before_the_run(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_CACHE", str(tmp_path / "cache"))
    db = tmp_path / "results.duckdb"
    if kind == "not a database":
        db.write_text("these are not the results you are looking for\n")
    elif kind == "a directory":
        db.mkdir()
    else:
        (tmp_path / "file").write_text("")
        db = tmp_path / "file" / "results.duckdb"
    code, stderr = _bench(["--db", str(db)], tmp_path / "runs")
    line = _one_line(stderr)
    assert code == 2 and "results database" in line and "--db" in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "runs").exists()


HOLDER = """
import sys
from slmdeploy.devices.lock import device_lock
with device_lock("local"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_bench_waiting_for_the_device_says_so_then_runs(tiny_fp32, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.Popen(
            [sys.executable, "-m", "slmdeploy", "bench", str(tiny_fp32.path), "-p", "8", "-g", "2", "-r", "1",
             "--warmup", "0", "--runs-dir", str(tmp_path / "runs"), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = second.stderr.readline()  # the first thing it says: whom it waits for
        assert "waiting for device local" in line and f"pid {holder.pid}" in line, line
        time.sleep(0.5)
        assert second.poll() is None  # still waiting, not failed
        holder.stdin.write("\n")
        holder.stdin.flush()
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 0 and '"status": "complete"' in out
    finally:
        holder.kill()
        holder.wait()


def test_nothing_measured_is_failed_not_incomplete(tiny_fp32, tmp_path):
    """A harness that dies before measuring (here: it is not a harness) leaves a failed run, its reason kept."""
    import json

    from slmdeploy.bench import Workload, bench
    from slmdeploy.errors import HarnessError

    with pytest.raises(HarnessError, match="is failed"):
        bench(tiny_fp32, "local", workload=Workload(prompt_tokens=8, gen_tokens=2, runs=1, warmup=0),
              runs_dir=tmp_path, harness="python", python="/bin/false", progress=False)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "failed" and meta["harness_exit_code"] == 1
    assert not (run_dir / "run.lock").exists()

