"""`bench --harness native` on every kind of device: the emulated phone over real adb and adb-direct, an
OpenSSH "board", and this host. Phones have no Python, so this is the path a lab uses.

The bundle (binary + the shared libraries it links) is pushed through the verified,
content-addressed deployment like the model; the trace, and the ETDump when asked for, come
back into the run directory and are analysed by the same code as the Python harness's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from slmdeploy.analysis.store import DB_NAME, read_table
from slmdeploy.bench import Workload, bench
from slmdeploy.cli.main import cli
from slmdeploy.devices.deploy import blob_path
from slmdeploy.export.source import sha256_file
from slmdeploy.harness.trace import read_trace

SMALL = Workload(prompt_tokens=8, gen_tokens=4, runs=2, warmup=1, threads=2, telemetry_interval_ms=50)


def _device(lab, kind: str, tmp_path: Path):
    if kind == "local":
        from slmdeploy.devices.local import LocalDevice

        return LocalDevice(tmp_path / "host-workdir")
    if kind == "ssh":
        return lab.open("ssh", workdir=tmp_path / "board")
    return lab.open(kind)


@pytest.mark.parametrize("kind", ["adb", "adb-direct", "ssh", "local"])
def test_native_harness_runs_the_whole_path(lab, tiny_fp32, bundle, tmp_path, kind):
    device = _device(lab, kind, tmp_path)
    runs = tmp_path / "runs"
    result = bench(tiny_fp32, device, workload=SMALL, harness="native", runs_dir=runs, profile=True, progress=False)

    assert result.status == "complete" and result.meta["harness"] == "native"
    trace = read_trace(result.run_dir / "trace.jsonl")
    assert trace.complete and trace.header["harness"]["name"] == "native"
    assert trace.header["model"]["sha256"] == tiny_fp32.manifest.model_file.sha256
    iterations = list(trace.iterations())
    measured = [e for e in iterations if not e.get("warmup")]
    assert [e["phase"] for e in measured] == ["prefill", "decode"] * SMALL.runs
    assert all(e["tokens"] == SMALL.gen_tokens and len(e["step_ns"]) == SMALL.gen_tokens
               for e in measured if e["phase"] == "decode")
    assert result.summary["decode_tps"] > 0 and result.summary["prefill_tps"] > 0
    assert result.summary["peak_rss_mib"] > tiny_fp32.model_file.stat().st_size / 2**20 / 2

    # the binary and every library it links were deployed verified, by content
    for path in bundle:
        sha = sha256_file(path)
        assert device.shell(["sha256sum", blob_path(device, sha)]).stdout.split()[0] == sha

    if kind.startswith("adb"):  # sampled on "the phone": its thermal zones and battery, not this host's
        telemetry = trace.of("telemetry")
        assert set(telemetry[0]["thermal_mc"]) == {z.type for z in lab.phone.profile.thermal_zones}
        assert telemetry[0]["battery"]["level_pct"] == lab.phone.profile.battery.capacity

    # the op-level profile came back and is analysed by the Inspector
    from slmdeploy.analysis.etdump import op_breakdown

    assert (result.run_dir / "etdump.etdp").stat().st_size > 0
    ops = op_breakdown(result.run_dir / "etdump.etdp", artifact=tiny_fp32, trace=trace, phase="decode")
    assert len(ops) > 0 and (ops["total_ms"] > 0).any()

    # ... and the CLI shows the same breakdown from the run directory alone
    report = CliRunner().invoke(cli, ["report", str(result.run_dir), "--ops", "--phase", "decode", "--json"])
    assert report.exit_code == 0, report.output
    shown = json.loads(report.stdout)["ops"][result.run_dir.name]
    assert [r["op"] for r in shown] == list(ops["op"]) and sum(r["calls"] for r in shown) == ops["calls"].sum()
    table = CliRunner().invoke(cli, ["report", str(result.run_dir), "--ops", "--top", "50"])
    assert table.exit_code == 0 and "nan" not in table.output  # kernels outside a delegate show "-"
    assert all(op[:20] in table.output for op in ops["op"])

    row = read_table(runs / DB_NAME)
    row = row[row.run_id == result.run_dir.name].iloc[0]
    assert row["harness"] == "native" and row["status"] == "complete"
    assert json.loads((result.run_dir / "run.json").read_text())["harness"] == "native"


def test_native_and_python_harness_rows_are_analysed_alike(lab, tiny_fp32, bundle, tmp_path):
    """Same artifact, same workload, two harnesses on the emulated phone: one table, same columns."""
    import sys

    from slmdeploy.analysis import load_runs

    runs = tmp_path / "runs"
    for harness in ("native", "python"):
        bench(tiny_fp32, f"adb:{lab.phone.serial}", workload=SMALL, harness=harness, runs_dir=runs,
              python=sys.executable, progress=False)
    frame = load_runs(runs)
    assert sorted(frame["harness"]) == ["native", "python"]
    for column in ("prefill_tps", "decode_tps", "ttft_ms", "load_ms", "peak_rss_mib"):
        assert frame[column].notna().all() and (frame[column] > 0).all(), column
    assert set(frame["measured_runs"]) == {SMALL.runs}
    no_profile = CliRunner().invoke(cli, ["report", str(runs), "--ops"])
    assert no_profile.exit_code == 2 and "bench with --profile" in no_profile.output


@pytest.fixture(scope="module")
def lookup_artifact(tmp_path_factory, lookup_model):
    from slmdeploy.export import export, from_module

    source = from_module("lookup", *lookup_model)
    return export(source, "android-portable-fp32", tmp_path_factory.mktemp("lookup"), progress=False)


@pytest.mark.parametrize("harness", ["native", "python"])
def test_bench_feeds_given_inputs_to_a_generic_artifact(lab, lookup_artifact, bundle, tmp_path, harness):
    import sys

    import numpy as np

    from slmdeploy.errors import HarnessError, WorkloadError

    np.save(tmp_path / "ok.npy", np.array([0, 1, 3], dtype=np.int64))  # 3: never drawn by the random fill
    np.save(tmp_path / "bad.npy", np.array([0, 1, 99], dtype=np.int64))
    np.save(tmp_path / "wrong.npy", np.array([0.0, 1.0, 3.0], dtype=np.float32))
    runs = tmp_path / "runs"
    common = {"harness": harness, "python": sys.executable, "runs_dir": runs, "progress": False}
    phone = f"adb:{lab.phone.serial}"

    work = Workload(runs=2, warmup=0, iterations=3, telemetry_interval_ms=0, inputs=(str(tmp_path / "ok.npy"),))
    result = bench(lookup_artifact, phone, workload=work, **common)
    assert result.status == "complete" and result.summary["measured_runs"] == 2
    fed = result.run_dir / "inputs" / "input0.bin"
    assert np.fromfile(fed, dtype="<i8").tolist() == [0, 1, 3]  # the run keeps what it was fed
    assert read_trace(result.run_dir / "trace.jsonl").header["workload"]["inputs"][0].endswith(sha256_file(fed))

    work.inputs = (str(tmp_path / "bad.npy"),)
    with pytest.raises(HarnessError, match="incomplete"):  # the method fails on the value given, on the phone
        bench(lookup_artifact, phone, workload=work, **common)

    before = set(runs.iterdir())
    work.inputs = (str(tmp_path / "wrong.npy"),)
    with pytest.raises(WorkloadError, match="is float32, the artifact takes int64"):
        bench(lookup_artifact, phone, workload=work, **common)
    work.inputs = (str(tmp_path / "ok.npy"), str(tmp_path / "ok.npy"))
    with pytest.raises(WorkloadError, match="2 --input files given; method 'forward' takes 1"):
        bench(lookup_artifact, phone, workload=work, **common)
    assert set(runs.iterdir()) == before  # rejected before any device work: no run directory


def test_litert_artifact_on_the_phone_with_its_op_profile(lab, bundle, tmp_path):
    """A .tflite through bench on the emulated phone: the LiteRT profiler's ops come back and report --ops shows them."""
    from slmdeploy.export import export

    artifact = export("llama-micro", "tflite-xnnpack-fp32", tmp_path / "tflite", progress=False)
    llm = artifact.manifest.llm
    work = Workload(prompt_tokens=llm.prefill_seq_len, gen_tokens=4, runs=2, warmup=1, threads=2,
                    telemetry_interval_ms=0)
    result = bench(artifact, f"adb:{lab.phone.serial}", workload=work, runs_dir=tmp_path / "runs", profile=True,
                   progress=False)
    assert result.status == "complete" and result.meta["harness"] == "native"  # auto: phones run native
    assert read_trace(result.run_dir / "trace.jsonl").header["runtime"]["name"] == "tflite"
    assert (result.run_dir / "litert_profile.json").stat().st_size > 0

    report = CliRunner().invoke(cli, ["report", str(result.run_dir), "--ops", "--json"])
    assert report.exit_code == 0, report.output
    ops = json.loads(report.stdout)["ops"][result.run_dir.name]
    assert any(r["category"] == "delegated_op" and r["calls"] > 0 for r in ops)  # XNNPACK's own ops
    assert all(r["total_ms"] >= 0 for r in ops) and sum(r["total_ms"] for r in ops) > 0
