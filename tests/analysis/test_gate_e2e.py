"""The gate end to end, as CI runs it: examples/ci/gate.sh with DEVICE set to the emulated phone
behind the real adb server (a real study of llama-tiny there, then compare against itself), and a
second real bench on that phone matched against the study's row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GATE = REPO / "examples" / "ci" / "gate.sh"


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    """The emulated Pixel 8 behind a private adb server; adb clients in this process and its children see it."""
    from slmdeploy.devices.emulator import EmulatedPhone
    from slmdeploy.devices.emulator.testing import AdbServer

    root = tmp_path_factory.mktemp("gate-phone")
    with AdbServer(home=root / "adb-home") as server, pytest.MonkeyPatch.context() as env:
        env.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        env.setenv("ANDROID_USER_HOME", str(root / "android"))
        with EmulatedPhone("pixel8", root=root / "phone") as emulated:
            server.connect(emulated.serial)
            yield f"adb:{emulated.serial}"


@pytest.fixture(scope="module")
def gate_out(tmp_path_factory, phone, bundle):  # bundle: the native harness the phone runs
    out = tmp_path_factory.mktemp("gate-out")
    proc = subprocess.run(["bash", str(GATE)], capture_output=True, text=True, timeout=900, cwd=out,
                          env=os.environ | {"OUT": str(out), "SLMDEPLOY": f"{sys.executable} -m slmdeploy",
                                            "DEVICE": phone, "COLUMNS": "200"})
    return out, proc


def test_gate_script_against_itself_passes(gate_out):
    out, proc = gate_out
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PASS: 1 matched row, 4 unchanged" in proc.stdout
    root = ET.parse(out / "gate.xml").getroot()
    assert root.get("tests") == "4" and root.get("failures") == "0"
    assert sum(int(s.get("skipped")) for s in root.iter("testsuite")) == 0
    assert (out / "gate.md").read_text().startswith("## ✅ slmdeploy compare: PASS")
    runs = list((out / "candidate" / "runs").iterdir())
    assert len(runs) == 1
    meta = json.loads((runs[0] / "run.json").read_text())
    assert meta["status"] == "complete" and meta["device"].startswith("adb:") and meta["device_model"] == "Pixel 8"


def test_a_separate_real_bench_matches_the_studys_row(gate_out, phone, tmp_path):
    """Another bench of the same artifact and workload (no study, other telemetry period) is the same row."""
    from slmdeploy.bench import Workload, bench

    out, proc = gate_out
    assert proc.returncode == 0, proc.stderr[-3000:]
    [artifact] = [p for p in (out / "candidate" / "artifacts").iterdir() if p.is_dir()]
    bench(artifact, phone, workload=Workload(prompt_tokens=16, gen_tokens=96, warmup=1, runs=12,
                                               telemetry_interval_ms=200),
          runs_dir=tmp_path / "runs", progress=False)
    # on a quiet host 12 x 96 tokens of llama-tiny can measure under validity's 1 s: this test is about matching
    cmp = subprocess.run([sys.executable, "-m", "slmdeploy", "compare", out / "candidate", tmp_path / "runs",
                          "--json", "--include-invalid"], capture_output=True, text=True, timeout=300)
    assert cmp.returncode in (0, 1), cmp.stderr  # the host's noise decides; matching must not fail
    data = json.loads(cmp.stdout)
    assert data["matched_rows"] == 1 and not data["only_baseline"] and not data["only_candidate"]
    decode = [r for r in data["results"] if r["metric"] == "decode_tps"][0]
    assert decode["baseline"]["n"] == decode["candidate"]["n"] == 12
    assert decode["verdict"] != "no data" and decode["change_pct"] is not None


def test_device_farm_workflow_gates_with_junit_and_a_job_summary():
    import yaml

    flow = yaml.safe_load((REPO / "examples" / "ci" / "device-farm.yml").read_text())
    job = flow["jobs"]["gate"]
    assert "self-hosted" in job["runs-on"]
    script = "\n".join(str(step.get("run", "")) for step in job["steps"])
    for needle in ("slmdeploy study run", "slmdeploy compare out/baseline out/candidate", "--junit out/gate.xml",
                   "--markdown out/gate.md", "GITHUB_STEP_SUMMARY", "slmdeploy report out/candidate --html"):
        assert needle in script, needle
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert any("out/gate.xml" in s["with"]["path"] and "out/report.html" in s["with"]["path"] for s in uploads)
