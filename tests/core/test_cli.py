"""The CLI: thin commands, --json output, and one-line errors without tracebacks."""

import json
import os
import shutil
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "slmdeploy"]


def run(*args, cwd=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env=os.environ | {"COLUMNS": "200"})


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_and_version():
    proc = run("--help")
    assert proc.returncode == 0 and "Example" in proc.stdout
    for cmd in ("export", "bench", "devices", "report", "targets", "models"):
        sub = run(cmd, "--help")
        assert sub.returncode == 0 and "Example" in sub.stdout, cmd
    assert "0.1.0" in run("--version").stdout


def test_unknown_model():
    _one_line_error(run("export", "gpt-17"), "unknown model 'gpt-17'", "llama-tiny")


def test_missing_artifact(tmp_path):
    _one_line_error(run("bench", tmp_path), "no manifest.json")


def test_corrupt_artifact(tiny_fp32, tmp_path):
    copy = tmp_path / "art"
    shutil.copytree(tiny_fp32.path, copy)
    pte = copy / "model.pte"
    data = bytearray(pte.read_bytes())
    data[100] ^= 1
    pte.unlink()
    pte.write_bytes(bytes(data))
    _one_line_error(run("bench", copy, "--runs-dir", tmp_path / "runs"), "sha256 mismatch")


def test_prompt_plus_generation_too_long(tiny_fp32, tmp_path):
    _one_line_error(run("bench", tiny_fp32.path, "-p", 250, "-g", 10, "--runs-dir", tmp_path),
                    "260 tokens exceed the artifact's max sequence length 256")


def test_unwritable_output_dir(tiny_fp32, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    _one_line_error(run("export", "llama-tiny", "--out", blocker / "x" / "y"), "cannot create output directory")
    _one_line_error(run("bench", tiny_fp32.path, "--runs-dir", blocker / "runs"), "runs directory", "not a directory")


def test_bench_json_then_report(tiny_fp32, tmp_path):
    proc = run("bench", tiny_fp32.path, "-p", 8, "-g", 4, "-r", 2, "--warmup", 0, "--runs-dir", tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "complete" and out["result"]["decode_tps"] > 0
    report = run("report", tmp_path, "--json")
    runs = json.loads(report.stdout)["runs"]
    assert [r["run_id"] for r in runs] == [out["result"]["run_id"]]
    table = run("report", tmp_path / "results.duckdb")
    assert "llama-tiny" in table.stdout and "decode tok/s" in table.stdout


def test_targets_and_models_json():
    targets = json.loads(run("targets", "--json").stdout)
    assert {"host-xnnpack", "host-xnnpack-8da4w"} <= {t["name"] for t in targets}
    models = json.loads(run("models", "--json").stdout)
    assert {"smollm2-135m", "qwen2.5-0.5b", "llama-tiny"} <= {m["name"] for m in models}


def test_devices_lists_this_host():
    infos = json.loads(run("devices", "--device", "local", "--json").stdout)
    assert infos[0]["spec"] == "local" and infos[0]["cpu_cores"] >= 1
