"""SIGINT, SIGTERM and SIGKILL of the host's `slmdeploy bench` process at random moments, on this
host and on the emulated phone over adb.

After the bench is gone and a later look (`slmdeploy report` on the runs folder) has run:
every run directory holds what the harness measured (its trace equals the one left in the
device's run directory), run.json is settled (``complete`` only with a complete trace,
``incomplete`` only with measurements, else ``failed``; never ``running``, nothing pending),
the results database agrees, and no harness of the run is left running.

SIGINT and SIGTERM are caught by bench itself (exit 130 / 143, settled before it exits);
SIGKILL is settled by the report's recovery. The moments are random (``random.Random``,
seeded per test and printed, so a failure can be replayed): in the middle of measuring after
a random number of iterations, and anywhere from start-up to the end on this host.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slmdeploy.analysis.store import DB_NAME, read_table
from slmdeploy.bench.rundir import LOCK_FILE, MEASUREMENTS
from slmdeploy.harness.trace import read_trace

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -signal.SIGKILL}
# far longer than any test waits: the run is always cut by the signal (or, anywhere-mode, may finish)
WORKLOAD = ["-p", "8", "-g", "4", "-r", "2000", "--warmup", "0", "-t", "2", "--telemetry-ms", "100"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "slmdeploy", *args]


def _start_bench(artifact: Path, device: str, runs: Path, workload: list[str] = WORKLOAD) -> subprocess.Popen:
    args = ["bench", str(artifact), "--device", device, "--runs-dir", str(runs), "--harness", "python",
            "--python", sys.executable, "--json", *workload]
    # As from a terminal: SIGINT at its default, so Python turns it into KeyboardInterrupt. A test run started
    # in the background of a non-interactive shell inherits SIGINT ignored, and bench rightly keeps it ignored.
    return subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _harnesses_of(run_id: str) -> list[int]:
    """Live processes (this host runs the emulated phone's too) whose command line names the run."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if run_id.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def _measurements(trace: Path) -> list[dict]:
    return [e for e in read_trace(trace).events if e.get("type") in MEASUREMENTS] if trace.is_file() else []


def _iterations_on_device(device_runs: Path) -> int:
    traces = list(device_runs.glob("*/trace.jsonl")) if device_runs.exists() else []
    return sum(t.read_bytes().count(b'"type":"iteration"') for t in traces)


def _wait_for_iterations(device_runs: Path, count: int, bench: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _iterations_on_device(device_runs) < count:
        assert bench.poll() is None, bench.stderr.read()
        assert time.monotonic() < deadline, f"the harness did not reach {count} iterations"
        time.sleep(0.02)


def _settled_by_bench(runs: Path) -> None:
    """Right after a caught signal, before anyone else looks: bench settled its own run."""
    for run_dir in (p for p in runs.iterdir() if p.is_dir()):
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["status"] != "running" and not (run_dir / LOCK_FILE).exists(), meta
        assert "interrupted on the host (SIG" in meta["error"], meta


def _check_after_a_later_look(runs: Path, device_runs: Path, env: dict) -> list[dict]:
    report = subprocess.run(_cli("report", str(runs), "--json"), capture_output=True, text=True, env=env, timeout=300)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    metas = []
    for run_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
        meta = json.loads((run_dir / "run.json").read_text())
        metas.append(meta)
        assert not (run_dir / LOCK_FILE).exists(), meta
        assert meta.get("recovery", {}).get("status") in (None, "done"), meta
        local, remote = run_dir / "trace.jsonl", device_runs / run_dir.name / "trace.jsonl"
        assert _measurements(local) == _measurements(remote)  # everything the device measured is here
        measured = bool(_measurements(local)) or any(_measurements(t) for t in run_dir.glob("trace.attempt*.jsonl"))
        complete = local.is_file() and read_trace(local).complete
        assert meta["status"] == ("complete" if complete else "incomplete" if measured else "failed"), meta
        assert _harnesses_of(run_dir.name) == [], f"a harness of {run_dir.name} is still running"
        if (runs / DB_NAME).exists() and meta["status"] != "complete":
            rows = read_table(runs / DB_NAME)
            assert rows[rows.run_id == run_dir.name].status.tolist() == [meta["status"]]
    return metas


def _device(kind: str, lab) -> tuple[str, Path]:
    """(device spec, this host's path of the device's runs directory)."""
    if kind == "local":
        return "local", Path(os.environ["SLMDEPLOY_CACHE"]) / "local-device" / "runs"
    return f"adb:{lab.phone.serial}", lab.phone.device_path("/data/local/tmp/slmdeploy/runs")


def _cases(cases: list[tuple], default: set[tuple]) -> list:
    """The default run keeps ``default``; the others are `pytest -m slow` (the same handler on another path)."""
    return [(c if len(c) > 1 else c[0]) if c in default else pytest.param(*c, marks=pytest.mark.slow) for c in cases]


# SIGINT and SIGTERM take one handler; over adb by default SIGTERM (SIGKILL: the recovery test below)
@pytest.mark.parametrize("name, kind", _cases([(n, k) for n in SIGNALS for k in ("local", "adb")],
                                              {*((n, "local") for n in SIGNALS), ("SIGTERM", "adb")}))
def test_a_signal_in_the_middle_of_measuring(name, kind, request, lab, tiny_fp32, tmp_path):
    sig, rng = SIGNALS[name], random.Random(f"{request.node.name}-{time.time_ns()}")
    after, extra = rng.randint(1, 40), rng.uniform(0, 0.5)
    print(f"{name} on {kind} after {after} iterations + {extra:.3f} s")
    spec, device_runs = _device(kind, lab)
    runs = tmp_path / "runs"
    before = _iterations_on_device(device_runs)
    bench = _start_bench(tiny_fp32.path, spec, runs)
    try:
        _wait_for_iterations(device_runs, before + after, bench)
        time.sleep(extra)
        bench.send_signal(sig)
        _, stderr = bench.communicate(timeout=120)
    finally:
        bench.kill()
    assert bench.returncode == EXIT[sig], stderr
    if sig != signal.SIGKILL:
        assert "Traceback" not in stderr and f"interrupted ({name})" in stderr, stderr
        _settled_by_bench(runs)
    (meta,) = _check_after_a_later_look(runs, device_runs, dict(os.environ))
    assert meta["status"] == "incomplete" and len(_measurements(runs / meta["run_id"] / "trace.jsonl")) >= after
    if sig == signal.SIGKILL:
        assert meta["recovery"]["by"] == "report" and "ended during the run" in meta["error"]


@pytest.mark.parametrize("name", _cases([(n,) for n in SIGNALS], {("SIGINT",), ("SIGKILL",)}))
def test_a_signal_at_any_moment(name, request, lab, tiny_fp32, tmp_path):
    """From start-up (imports, lock, deploy) through the run and the pull to the end: same guarantees."""
    sig, rng = SIGNALS[name], random.Random(f"{request.node.name}-{time.time_ns()}")
    delay = rng.uniform(0.0, 9.0)
    print(f"{name} on local after {delay:.3f} s")
    spec, device_runs = _device("local", lab)
    runs = tmp_path / "runs"
    bench = _start_bench(tiny_fp32.path, spec, runs, ["-p", "8", "-g", "4", "-r", "60", "--warmup", "0", "-t", "2"])
    try:
        time.sleep(delay)
        bench.send_signal(sig)
        bench.communicate(timeout=120)
    finally:
        bench.kill()
    if not runs.exists():  # Python was still starting (before any handler): nothing was begun
        return
    assert bench.returncode in (0, EXIT[sig])  # 0: it had finished before the signal
    _check_after_a_later_look(runs, device_runs, dict(os.environ))


def test_the_next_bench_on_the_device_recovers_a_killed_run(lab, tiny_fp32, tmp_path):
    """Not only report: a bench on the same device settles the orphan before its own run (and keeps it)."""
    spec, device_runs = _device("adb", lab)
    runs = tmp_path / "runs"
    before = _iterations_on_device(device_runs)
    bench = _start_bench(tiny_fp32.path, spec, runs)
    try:
        _wait_for_iterations(device_runs, before + 5, bench)
        bench.send_signal(signal.SIGKILL)
        bench.wait(timeout=60)
    finally:
        bench.kill()
    (orphan,) = [p for p in runs.iterdir() if p.is_dir()]
    assert json.loads((orphan / "run.json").read_text())["status"] == "running"
    nxt = subprocess.run(_cli("bench", str(tiny_fp32.path), "--device", spec, "--runs-dir", str(runs), "--harness",
                              "python", "--python", sys.executable, "--json", "-p", "8", "-g", "4", "-r", "2",
                              "--warmup", "0", "-t", "2"), capture_output=True, text=True, timeout=300)
    assert nxt.returncode == 0, nxt.stderr
    meta = json.loads((orphan / "run.json").read_text())
    assert meta["status"] == "incomplete" and meta["recovery"]["by"].startswith("bench ")
    assert len(_measurements(orphan / "trace.jsonl")) >= 5
    assert _db_status(runs, orphan.name) == "incomplete"


def _db_status(runs: Path, run_id: str) -> str:
    rows = read_table(runs / DB_NAME)
    return rows[rows.run_id == run_id].status.iloc[0]
