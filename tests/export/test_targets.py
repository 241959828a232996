"""Targets are data, checked when loaded: impossible recipes and missing toolchains are
one-line errors before any work starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slmdeploy.errors import ExportError, UnknownTargetError
from slmdeploy.export import export, list_targets, load_target
from slmdeploy.export.source import ModelSource

SLMDEPLOY = str(Path(sys.executable).parent / "slmdeploy")  # the console script of this environment


def _target_file(tmp_path, runtime="executorch", delegates='["xnnpack"]', quantization="fp32", options="", extra=""):
    path = tmp_path / "mine.toml"
    path.write_text(
        f'description = "a test recipe"\nruntime = "{runtime}"\nplatform = "android"\n'
        f"delegates = {delegates}\nquantization = \"{quantization}\"\n{extra}\n"
        + (f"[options]\n{options}\n" if options else "")
    )
    return path


def test_every_shipped_target_loads_and_is_listed():
    targets = list_targets()
    assert len(targets) >= 14
    out = subprocess.run([SLMDEPLOY, "targets", "--json"], capture_output=True, text=True, check=True)
    listed = {t["name"]: t for t in json.loads(out.stdout)}
    assert set(listed) == {t.name for t in targets}
    assert listed["android-qnn-sm8650"]["options"] == {"soc": "SM8650"}
    assert listed["ios-coreml-ane-int4"]["quantization"] == "4w"
    assert listed["tflite-int4"]["options"]["group_size"] == 32


def test_a_users_own_target_file_is_accepted(tmp_path):
    path = _target_file(tmp_path, runtime="tflite", delegates='["xnnpack", "gpu"]', quantization="8da8w",
                        options="prefill_len = 16", extra="max_seq_len = 48")
    target = load_target(path)
    assert (target.name, target.runtime, target.delegates, target.max_seq_len) == ("mine", "tflite", ("xnnpack", "gpu"), 48)
    assert target.options == {"prefill_len": 16}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(runtime="tflite", delegates='["coreml"]'), "cannot be used with runtime 'tflite'"),
        (dict(quantization="4w"), "quantization '4w' is not available for executorch with the xnnpack delegate"),
        (dict(delegates='["portable"]', quantization="8da4w"), "takes ['fp32']"),
        (dict(runtime="coreml", delegates='["ane"]', quantization="8da4w"), "not available for coreml"),
        (dict(runtime="tflite", quantization="fp16"), "not available for tflite"),
        (dict(delegates='["qnn"]', quantization="fp32"), "takes ['fp16']"),
        (dict(delegates='["coreml"]', options='compute_unit = "all"'), "option 'compute_unit' does not apply"),
        (dict(delegates='["qnn"]', quantization="fp16", options='soc = "SM9999"'), "soc = 'SM9999' must be one of"),
        (dict(runtime="tflite", options="group_size = 48", quantization="8da4w"), "group_size = 48 must be one of"),
        (dict(runtime="coreml", delegates='["ane"]', quantization="4w", options='minimum_deployment_target = "iOS17"'),
         'int4 block-wise weights (4w) need the iOS18/macOS15 opset, not iOS17; for iOS17 use quantization = "8w"'),
        (dict(runtime="coreml", delegates='["ane"]', options='minimum_deployment_target = "iOS18"\nprefill_len = 64'),
         "prefill_len applies only to Core ML deployment targets before iOS18/macOS15"),
        (dict(delegates='["xnnpack", "portable"]'), "'portable' means no delegate"),
        (dict(delegates='"xnnpack"'), "delegates must be a list"),
        (dict(delegates="[]"), "delegates is empty"),
        (dict(extra="max_seq_len = 1"), "max_seq_len must be an integer >= 2"),
    ],
)
def test_impossible_recipes_are_rejected_when_loaded(tmp_path, kwargs, message):
    with pytest.raises(UnknownTargetError) as err:
        load_target(_target_file(tmp_path, **kwargs))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def _no_build(monkeypatch):
    """Make any model build fail loudly: a preflight error must come first."""

    def boom(self):
        raise AssertionError("the model was built before the toolchain was checked")

    monkeypatch.setattr(ModelSource, "build", boom)


def test_qnn_without_the_sdk_says_what_to_install(monkeypatch, tmp_path):
    _no_build(monkeypatch)
    monkeypatch.delenv("QNN_SDK_ROOT", raising=False)
    with pytest.raises(ExportError) as err:
        export("llama-micro", "android-qnn-sm8650", tmp_path / "a", progress=False)
    text = str(err.value)
    assert "QNN_SDK_ROOT is not set" in text and "Qualcomm AI Engine Direct SDK" in text and "LD_LIBRARY_PATH" in text
    monkeypatch.setenv("QNN_SDK_ROOT", str(tmp_path))
    with pytest.raises(ExportError, match="does not hold a QNN SDK .no lib/x86_64-linux-clang/libQnnHtp.so"):
        export("llama-micro", "android-qnn-sm8650", tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()


def test_mps_names_its_removal_and_the_alternative(monkeypatch, tmp_path):
    _no_build(monkeypatch)
    with pytest.raises(ExportError) as err:
        export("llama-micro", "ios-mps-fp16", tmp_path / "a", progress=False)
    assert "removed in 1.5" in str(err.value) and "ios-executorch-coreml" in str(err.value)


@pytest.mark.parametrize(
    "target, missing, install",
    [
        ("ios-coreml-ane-fp16", "coremltools", "pip install 'coremltools==9.0'"),
        ("tflite-int4", "ai_edge_quantizer", "'ai-edge-quantizer>=0.10'"),
        ("tflite-xnnpack-fp32", "litert_torch", "'litert-torch==0.10.0'"),
        ("ios-executorch-coreml", "coremltools", "pip install coremltools==9.0"),
    ],
)
def test_a_missing_runtime_package_is_named_with_its_install_command(monkeypatch, tmp_path, target, missing, install):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    _no_build(monkeypatch)
    with pytest.raises(ExportError) as err:
        export("llama-micro", target, tmp_path / "a", progress=False)
    assert install in str(err.value)


def test_the_cli_prints_target_errors_as_one_line(tmp_path):
    bad = _target_file(tmp_path, runtime="tflite", quantization="4w")
    out = subprocess.run([SLMDEPLOY, "export", "llama-micro", "--target", str(bad), "--out", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert line.startswith("error:") and "quantization '4w' is not available for tflite" in line
