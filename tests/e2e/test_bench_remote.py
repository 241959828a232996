"""`bench` over adb, adb-direct and ssh, whole path: deploy -> harness on the device -> trace -> store.

And what goes wrong in labs: a corrupted or half-pushed artifact (never run; the next bench
pushes again), a link lost mid-run (stored incomplete, finished iterations kept; a retry
completes), a hot phone (cooldown first) that throttles during the run (flagged).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from slmdeploy.analysis.store import DB_NAME, read_table
from slmdeploy.bench import Workload, bench
from slmdeploy.cli.main import cli
from slmdeploy.devices import open_device
from slmdeploy.devices.deploy import blob_path
from slmdeploy.devices.emulator import EmulatedPhone, load_profile
from slmdeploy.devices.loopback import CorruptingLink
from slmdeploy.errors import DeviceError, HarnessError
from slmdeploy.harness.trace import read_trace

# threads=2: the emulated Pixel 8 reports 9 cores, but they are this host's (2 in CI)
SMALL = Workload(prompt_tokens=8, gen_tokens=4, runs=2, warmup=0, threads=2, telemetry_interval_ms=100)
LONG = Workload(prompt_tokens=8, gen_tokens=4, runs=40, warmup=0, threads=2, telemetry_interval_ms=100)
# long enough (seconds) that a harness cut off after a few runs is still running when bench reconnects
LONGER = Workload(prompt_tokens=8, gen_tokens=4, runs=600, warmup=0, threads=2, telemetry_interval_ms=100)
PYTHON = {"harness": "python", "python": sys.executable, "progress": False}


def _meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def _db_row(runs_dir: Path, run_id: str) -> dict:
    rows = read_table(runs_dir / DB_NAME)
    return rows[rows.run_id == run_id].iloc[0].to_dict()


def _only_run(runs_dir: Path) -> Path:
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return run_dir


def _forget_artifact(device, sha: str) -> None:
    """Make the next bench push the model again (earlier tests deployed it to this phone)."""
    blob = blob_path(device, sha)
    assert device.shell(["rm", "-f", blob, blob + ".ok"]).ok


class DropMidRun:
    """Watches the device's run directories (they are on this host) and calls ``cut`` once a
    new trace holds ``after`` iterations: the link dies in the middle of measuring."""

    def __init__(self, runs_root: Path, cut: Callable[[], None], after: int = 3) -> None:
        self.runs_root, self.cut, self.after = runs_root, cut, after
        self.known = set(runs_root.glob("*/trace.jsonl")) if runs_root.exists() else set()
        self.seen_at_cut: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            for trace in set(self.runs_root.glob("*/trace.jsonl")) - self.known:
                count = trace.read_text(errors="replace").count('"type": "iteration"') or \
                    trace.read_text(errors="replace").count('"type":"iteration"')
                if count >= self.after:
                    self.cut()
                    self.seen_at_cut = count
                    return

    def __enter__(self) -> "DropMidRun":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _iterations(trace_path: Path) -> list[dict]:
    return list(read_trace(trace_path).iterations())


def test_bench_over_adb_with_the_cli(lab, tiny_fp32, tmp_path):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(cli, [
        "bench", str(tiny_fp32.path), "--device", f"adb:{lab.phone.serial}", "--harness", "python",
        "--python", sys.executable, "-p", "8", "-g", "4", "-r", "2", "--warmup", "0", "-t", "2", "--telemetry-ms", "100",
        "--runs-dir", str(runs), "--cooldown-below", "90", "--json",
    ])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run_dir = Path(out["run_dir"])
    assert out["status"] == "complete" and out["result"]["decode_tps"] > 0
    meta = _meta(run_dir)
    assert meta["device"] == f"adb:{lab.phone.serial}" and meta["device_model"] == "Pixel 8"
    assert meta["device_soc"] == "Tensor G3" and meta["harness"] == "python" and meta["attempts"] == 1
    assert meta["cooldown"][0]["reached"] and meta["cooldown"][0]["end_c"] < 90  # an idle phone: no wait
    device_json = json.loads((run_dir / "device.json").read_text())
    assert device_json["emulated"] and device_json["transport"] == "adb"
    trace = read_trace(run_dir / "trace.jsonl")
    assert trace.complete and len(_iterations(run_dir / "trace.jsonl")) == 4  # 2 runs x (prefill + decode)
    telemetry = trace.of("telemetry")
    assert telemetry, "the harness sampled no telemetry"
    # sampled on "the phone": its thermal zones, cores and battery, not this host's
    assert set(telemetry[0]["thermal_mc"]) == {z.type for z in lab.phone.profile.thermal_zones}
    assert len(telemetry[0]["cpu_khz"]) >= lab.phone.profile.cpu_count
    assert telemetry[0]["battery"]["level_pct"] == lab.phone.profile.battery.capacity
    assert _db_row(runs, meta["run_id"])["status"] == "complete"


def test_corrupted_artifact_is_never_run_and_the_next_bench_pushes_again(lab, tiny_fp32, tmp_path):
    adb = lab.open("adb")
    sha = tiny_fp32.manifest.model_file.sha256
    _forget_artifact(adb, sha)
    bad_cable = CorruptingLink(adb)
    with pytest.raises(DeviceError, match="arrived corrupted"):
        bench(tiny_fp32, bad_cable, workload=SMALL, runs_dir=tmp_path / "bad", **PYTHON)
    assert bad_cable.corrupted, "the fault was not injected"
    run_dir = _only_run(tmp_path / "bad")
    assert _meta(run_dir)["status"] == "failed"
    assert not (run_dir / "trace.jsonl").exists() and not (run_dir / "harness.stdout").exists()
    assert not adb.shell(["test", "-e", blob_path(adb, sha)]).ok  # never put in place ...
    remote_run = f"{adb.workdir}/runs/{run_dir.name}"
    assert not adb.shell(["test", "-e", remote_run]).ok  # ... and never run
    assert _db_row(tmp_path / "bad", run_dir.name)["status"] == "failed"

    result = bench(tiny_fp32, f"adb:{lab.phone.serial}", workload=SMALL, runs_dir=tmp_path / "good", **PYTHON)
    assert result.status == "complete"
    assert adb.shell(["sha256sum", blob_path(adb, sha)]).stdout.split()[0] == sha


def test_a_cached_blob_corrupted_in_place_is_never_run(lab, tiny_fp32, tmp_path):
    """Same size, same name, different bytes: found before the run, pushed again; the trace names what ran."""
    adb = lab.open("adb")
    sha = tiny_fp32.manifest.model_file.sha256
    bench(tiny_fp32, adb, workload=SMALL, runs_dir=tmp_path / "first", **PYTHON)  # cached on the phone
    blob = blob_path(adb, sha)
    assert adb.shell(f"printf XXXX | dd of={blob} bs=1 seek=4096 conv=notrunc 2>/dev/null").ok
    assert adb.shell(["sha256sum", blob]).stdout.split()[0] != sha
    assert adb.shell(["stat", "-c", "%s", blob]).stdout.strip() == str(tiny_fp32.manifest.model_file.size)
    result = bench(tiny_fp32, adb, workload=SMALL, runs_dir=tmp_path / "second", **PYTHON)
    ran = adb.shell(["sha256sum", blob]).stdout.split()[0]
    header = read_trace(result.run_dir / "trace.jsonl").header
    assert result.status == "complete" and ran == sha and header["model"]["sha256"] == ran


def test_half_pushed_artifact_is_never_run_and_the_next_bench_succeeds(lab, tiny_fp32, tmp_path):
    direct = lab.open("adb-direct")
    sha = tiny_fp32.manifest.model_file.sha256
    _forget_artifact(direct, sha)
    lab.phone.drop_next_push_after(tiny_fp32.manifest.model_file.size // 2)
    with pytest.raises(DeviceError):
        bench(tiny_fp32, direct, workload=SMALL, runs_dir=tmp_path / "cut", **PYTHON)
    run_dir = _only_run(tmp_path / "cut")
    assert _meta(run_dir)["status"] == "failed" and not (run_dir / "trace.jsonl").exists()
    assert not direct.shell(["test", "-e", blob_path(direct, sha)]).ok
    assert not direct.shell(["test", "-e", f"{direct.workdir}/runs/{run_dir.name}"]).ok

    result = bench(tiny_fp32, f"adb-direct:{lab.phone.serial}", workload=SMALL, runs_dir=tmp_path / "ok", **PYTHON)
    assert result.status == "complete" and result.meta["device"] == f"adb-direct:{lab.phone.serial}"
    assert result.summary["measured_runs"] == 2 and result.summary["decode_tps"] > 0


def test_link_lost_mid_run_is_stored_incomplete_with_finished_iterations(lab, tiny_fp32, tmp_path):
    adb = lab.open("adb")
    runs_root = lab.phone.device_path(f"{adb.workdir}/runs")
    with DropMidRun(runs_root, lab.phone.drop_connections) as drop:
        with pytest.raises(HarnessError, match="incomplete"):
            bench(tiny_fp32, f"adb:{lab.phone.serial}", workload=LONGER, runs_dir=tmp_path / "runs", **PYTHON)
    assert drop.seen_at_cut is not None, "the run ended before the link could be cut"
    run_dir = _only_run(tmp_path / "runs")
    meta = _meta(run_dir)
    assert meta["status"] == "incomplete" and "lost" in meta["error"]
    trace = read_trace(run_dir / "trace.jsonl")  # pulled after reconnecting
    assert not trace.complete
    kept = _iterations(run_dir / "trace.jsonl")
    assert drop.seen_at_cut <= len(kept) < 2 * LONGER.runs
    row = _db_row(tmp_path / "runs", run_dir.name)
    assert row["status"] == "incomplete" and row["measured_runs"] >= 1
    iterations = read_table(tmp_path / "runs" / DB_NAME, "iterations")
    assert (iterations.run_id == run_dir.name).sum() == len(kept)
    assert subprocess.run(["pgrep", "-f", run_dir.name], capture_output=True).stdout == b""


def test_ssh_run_dropped_mid_run_is_retried_to_completion(lab, tiny_fp32, tmp_path):
    board = lab.open("ssh", workdir=tmp_path / "board")
    with DropMidRun(tmp_path / "board" / "runs", lambda: lab.cut(board)) as drop:
        result = bench(tiny_fp32, board, workload=LONGER, runs_dir=tmp_path / "runs", retries=1, **PYTHON)
    assert drop.seen_at_cut is not None, "the run ended before the link could be cut"
    assert result.status == "complete" and result.meta["attempts"] == 2
    assert result.summary["measured_runs"] == LONGER.runs
    first = result.run_dir / "trace.attempt1.jsonl"  # the interrupted attempt is kept beside the retry
    assert len(_iterations(first)) >= drop.seen_at_cut
    assert json.loads((result.run_dir / "device.json").read_text())["transport"] == "ssh"
    # sshd left the first harness running when the link died; bench killed it before the retry
    assert subprocess.run(["pgrep", "-f", result.run_dir.name], capture_output=True).stdout == b""
    assert _db_row(tmp_path / "runs", result.run_dir.name)["status"] == "complete"


@pytest.fixture
def hot_phone(lab, tmp_path):
    """A Pixel 8 that heats fast and cools fast, connected to the lab's adb server."""
    profile = load_profile("pixel8").with_thermal(heat_c_per_cpu_s=3.0, cooling_tau_s=2.0, trip_c=60.0)
    with EmulatedPhone(profile, root=tmp_path / "hot", thermal_interval_s=0.05) as phone:
        yield phone


def test_cooldown_first_then_throttling_during_the_run_is_flagged(hot_phone, tiny_fp32, tmp_path):
    dev = open_device(f"adb-direct:{hot_phone.serial}")
    hot_phone.thermal.step(1.0, 8.0)  # it just ran something heavy
    assert hot_phone.thermal.temperature_c > 45

    def heat_spike() -> None:  # something else starts hammering the SoC mid-run
        hot_phone.thermal.step(10.0, 8.0)

    runs_root = hot_phone.device_path(f"{dev.workdir}/runs")
    with DropMidRun(runs_root, heat_spike, after=2) as spike:
        result = bench(tiny_fp32, dev, workload=LONG, runs_dir=tmp_path / "runs", cooldown_c=45.0,
                       cooldown_timeout=120, **PYTHON)
    assert spike.seen_at_cut is not None
    (cooldown,) = result.meta["cooldown"]
    assert cooldown["reached"] and cooldown["start_c"] > 45.0 > cooldown["end_c"]
    assert result.meta["cooldown_wait_s"] > 0
    assert result.status == "complete"
    assert result.summary["thermal_throttled"] is True
    assert result.summary["thermal_min_freq_ratio"] < 0.85 and result.summary["thermal_temp_rise_c"] >= 2
    # the evidence: the phone's thermal governor lowered the cores' cap (scaling_max_freq)
    assert abs(result.summary["thermal_freq_cap_ratio"] - hot_phone.profile.thermal.throttle_ratio) < 0.01
    assert bool(_db_row(tmp_path / "runs", result.run_dir.name)["thermal_throttled"]) is True
