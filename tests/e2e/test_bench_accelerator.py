"""`bench --accelerator gpu`: LiteRT's GPU accelerator from the product, and no GPU label on a CPU run.

The emulated phone runs this host's harness, whose LiteRT (the ai-edge-litert wheel) has no
GPU accelerator: a GPU bench there must fail with the harness's reason kept in the run.
"""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from slmdeploy.analysis import load_runs
from slmdeploy.analysis.store import DB_NAME, read_table
from slmdeploy.analysis.table import display_rows
from slmdeploy.bench import Workload, bench
from slmdeploy.cli.main import cli
from slmdeploy.errors import HarnessError, WorkloadError
from slmdeploy.export.artifact import Artifact

NO_GPU = "no GPU accelerator is available in this LiteRT build"


@pytest.fixture(scope="module")
def micro_tflite(tmp_path_factory):
    from slmdeploy.export import export

    return export("llama-micro", "tflite-xnnpack-fp32", tmp_path_factory.mktemp("tflite") / "micro", progress=False)


def _work(artifact) -> Workload:
    return Workload(prompt_tokens=artifact.manifest.llm.prefill_seq_len, gen_tokens=2, runs=1, warmup=0, threads=1,
                    telemetry_interval_ms=0)


def test_gpu_on_the_phone_fails_with_the_harness_reason(lab, micro_tflite, bundle, tmp_path):
    runs = tmp_path / "runs"
    assert "gpu" in micro_tflite.manifest.delegates
    with pytest.raises(HarnessError, match=NO_GPU):
        bench(micro_tflite, f"adb:{lab.phone.serial}", workload=_work(micro_tflite), runs_dir=runs,
              accelerator="gpu", progress=False)

    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] in ("failed", "incomplete") and meta["harness"] == "native"
    assert meta["accelerator"] == "gpu" and meta["harness_exit_code"] == 3
    assert NO_GPU in meta["error"] and "libLiteRtGpuAccelerator.so" in meta["error"]
    (row,) = read_table(runs / DB_NAME).to_dict("records")
    assert row["accelerator"] == "gpu" and row["status"] != "complete" and not row["complete"]
    frame = load_runs(run_dir)
    assert frame.iloc[0]["accelerator"] == "gpu"
    assert display_rows(frame)[0]["delegates"].endswith("@gpu")

    # The same artifact on the CPU accelerator: complete, labelled cpu, and the harness's word on it.
    result = bench(micro_tflite, f"adb:{lab.phone.serial}", workload=_work(micro_tflite), runs_dir=runs,
                   progress=False)
    assert result.status == "complete" and result.meta["accelerator"] == "cpu"
    assert isinstance(result.meta["fully_accelerated"], bool)
    assert display_rows(load_runs(result.run_dir))[0]["delegates"] == "xnnpack+gpu+nnapi @cpu"


def test_gpu_is_rejected_before_any_device_work(lab, micro_tflite, tiny_fp32, tmp_path):
    runs = tmp_path / "runs"
    phone = f"adb:{lab.phone.serial}"
    common = dict(runs_dir=runs, accelerator="gpu", progress=False)
    with pytest.raises(WorkloadError, match="--accelerator gpu selects LiteRT's GPU accelerator; .* is executorch"):
        bench(tiny_fp32, phone, workload=Workload(prompt_tokens=8, gen_tokens=2, runs=1), **common)
    with pytest.raises(HarnessError, match="--accelerator gpu needs the native harness"):
        bench(micro_tflite, phone, workload=_work(micro_tflite), harness="python", **common)

    cpu_only = tmp_path / "cpu-only"
    shutil.copytree(micro_tflite.path, cpu_only)
    manifest = json.loads((cpu_only / "manifest.json").read_text())
    manifest["delegates"] = ["xnnpack"]
    (cpu_only / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(WorkloadError, match="exported for xnnpack, not gpu"):
        bench(Artifact.open(cpu_only), phone, workload=_work(micro_tflite), **common)
    assert not runs.exists() or not any(runs.iterdir())  # no run directory: nothing was started

    cli_run = CliRunner().invoke(cli, ["bench", str(micro_tflite.path), "--device", phone, "--harness", "python",
                                       "--accelerator", "gpu", "--runs-dir", str(runs)])
    assert cli_run.exit_code != 0 and "needs the native harness" in cli_run.output
    bad = CliRunner().invoke(cli, ["bench", str(micro_tflite.path), "--accelerator", "npu"])
    assert bad.exit_code == 2 and "'npu' is not one of 'cpu', 'gpu'" in bad.output
