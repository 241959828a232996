"""Orphaned runs (bench/recover.py): what is settled, what is left alone, what waits for its device.

An orphan is made here the way a killed bench leaves one: run.json ``running``, a ``run.lock``
nobody holds, a device run directory with the harness's trace and a harness still running
(a process whose command line carries the run id, as the real one's ``--run-id`` does).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmdeploy.analysis.store import read_table
from slmdeploy.bench.recover import orphans, recover_runs
from slmdeploy.bench.rundir import LOCK_FILE, RunDir, claim
from slmdeploy.devices.local import LocalDevice
from slmdeploy.devices.lock import device_lock

HEADER = '{"type":"header","run_id":"x"}\n'
ITERATION = '{"type":"iteration","run":0,"phase":"decode","ns":1000,"tokens":4}\n'
FOOTER = '{"type":"footer","status":"complete","runs":1}\n'


def _orphan(runs: Path, dev: LocalDevice, name: str, trace: str | None, *, device: str = "local",
            harness: bool = False, host: str | None = None) -> tuple[Path, subprocess.Popen | None]:
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    remote = Path(dev.workdir) / "runs" / name
    remote.mkdir(parents=True)
    if trace is not None:
        (remote / "trace.jsonl").write_text(trace)
    proc = None
    if harness:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", f"--run-id={name}"])
        (remote / "harness.pid").write_text(f"{proc.pid}\n")
    meta = {"run_id": name, "status": "running", "device": device, "device_run_dir": str(remote),
            "pid": 999999, "host": host or socket.gethostname(), "started_at": "2026-01-01T00:00:00+00:00",
            "db": str(runs / "results.duckdb")}
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / LOCK_FILE).write_text("pid 999999 on a host\n")
    return run_dir, proc


def _meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.fixture
def dev(tmp_path) -> LocalDevice:
    return LocalDevice(tmp_path / "device")


def test_a_killed_run_is_settled_with_its_trace_and_its_harness_stopped(dev, tmp_path):
    runs = tmp_path / "runs"
    run_dir, harness = _orphan(runs, dev, "r-measured", HEADER + ITERATION * 3, harness=True)
    try:
        (result,) = recover_runs(runs, dev, by="test")
        assert harness.wait(timeout=10) == -9  # stopped, not left measuring
    finally:
        harness.kill()
    meta = _meta(run_dir)
    assert result.status == meta["status"] == "incomplete" and result.pulled == ["trace.jsonl"]
    assert result.describe() == "recovered orphaned run r-measured: incomplete (pulled trace.jsonl)"
    assert (run_dir / "trace.jsonl").read_text() == HEADER + ITERATION * 3
    assert meta["recovery"]["status"] == "done" and meta["recovery"]["by"] == "test"
    assert "pid 999999" in meta["error"] and meta["finished_at"]
    assert not (run_dir / LOCK_FILE).exists() and orphans(runs) == []
    assert recover_runs(runs, dev) == []  # settled once


@pytest.mark.parametrize("trace, status", [(HEADER + ITERATION + FOOTER, "complete"), (HEADER, "failed"),
                                           (None, "failed")])
def test_the_status_says_what_was_measured(dev, tmp_path, trace, status):
    """Complete: the harness finished while nobody watched. A header alone is no measurement."""
    runs = tmp_path / "runs"
    run_dir, _ = _orphan(runs, dev, "r", trace)
    (result,) = recover_runs(runs, dev)
    assert result.status == _meta(run_dir)["status"] == status

    assert read_table(runs / "results.duckdb").status.tolist() == [status]  # indexed where its bench stored


def test_a_live_bench_is_never_touched(dev, tmp_path):
    runs = tmp_path / "runs"
    live = RunDir.create(runs, "art", "local")  # holds its run.lock, as a running bench does
    live.update(run_id=live.run_id, status="running", device="local")
    assert orphans(runs) == [] and recover_runs(runs, dev) == []
    assert _meta(live.path)["status"] == "running" and (live.path / LOCK_FILE).exists()
    live.update(status="complete")
    live.release()
    assert not (live.path / LOCK_FILE).exists()


def test_another_devices_orphan_waits_for_that_device(dev, tmp_path):
    """A bench on one device marks the orphans of another (never `running` once looked at), keeps them pending."""
    runs = tmp_path / "runs"
    run_dir, _ = _orphan(runs, dev, "r-phone", HEADER + ITERATION, device="adb:SERIAL1")
    (pending,) = recover_runs(runs, dev)
    meta = _meta(run_dir)
    assert pending.pending and "adb:SERIAL1" in pending.pending and meta["status"] == "failed"
    assert pending.describe().startswith("orphaned run r-phone (its bench died) marked failed for now")
    assert meta["recovery"]["status"] == "pending" and (run_dir / LOCK_FILE).exists()
    assert orphans(runs) == [run_dir]  # still there for a look that reaches the phone
    meta["device"] = "local"  # (the phone is this host's local device, as far as this test goes)
    (run_dir / "run.json").write_text(json.dumps(meta))
    (done,) = recover_runs(runs)  # no device given: each orphan's own is opened
    assert done.status == _meta(run_dir)["status"] == "incomplete" and not (run_dir / LOCK_FILE).exists()
    assert "ended during the run" in _meta(run_dir)["error"]


def test_another_hosts_run_is_not_reached_for(dev, tmp_path):
    runs = tmp_path / "runs"
    run_dir, _ = _orphan(runs, dev, "r", HEADER + ITERATION, host="lab-runner-7")
    (result,) = recover_runs(runs)
    assert "benched on host lab-runner-7" in result.pending and result.pulled == []


def test_a_busy_device_leaves_its_orphans_pending(dev, tmp_path):
    runs = tmp_path / "runs"
    run_dir, _ = _orphan(runs, dev, "r", HEADER + ITERATION)
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom slmdeploy.devices.lock import device_lock\n"
                               "with device_lock('local'):\n print('held', flush=True); sys.stdin.readline()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        (result,) = recover_runs(runs, lock_timeout=0.3)
        assert time.monotonic() - start < 10 and "busy" in result.pending
        assert _meta(run_dir)["recovery"]["status"] == "pending" and not (run_dir / "trace.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    with device_lock("local", timeout=5):
        pass
    assert recover_runs(runs)[0].status == "incomplete"


def test_a_settled_runs_stale_lock_file_is_removed(dev, tmp_path):
    runs = tmp_path / "runs"
    run_dir, _ = _orphan(runs, dev, "r", None)
    meta = _meta(run_dir) | {"status": "complete"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    assert recover_runs(runs, dev) == [] and not (run_dir / LOCK_FILE).exists()
    assert _meta(run_dir) == meta


def test_an_unreadable_run_json_is_left_for_report_to_flag(dev, tmp_path):
    runs = tmp_path / "runs"
    run_dir, _ = _orphan(runs, dev, "r", HEADER)
    (run_dir / "run.json").write_text("{ torn")
    assert recover_runs(runs, dev) == []
    assert (run_dir / "run.json").read_text() == "{ torn"


def test_a_single_run_directory_can_be_recovered(dev, tmp_path):
    run_dir, _ = _orphan(tmp_path / "runs", dev, "r", HEADER + ITERATION)
    assert [r.run_dir for r in recover_runs(run_dir, dev)] == [run_dir]
    assert claim(run_dir) is not None  # nobody holds it
