"""The Core ML spec check: interface names, dtypes and shapes (states too) against what the
exporter intended; a failed check fails the export and caches nothing; int8 weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from export_matrix import CROSS_MODEL, MLP, SEQ

from slmdeploy.export import cache, export, from_module, load_target
from slmdeploy.export.coreml import exporter as coreml
from slmdeploy.export.manifest import TensorSpec

WEIGHT_OP = "constexpr_blockwise_shift_scale"


def _expect(manifest, state_dtype: str = "float16") -> dict:
    """What the exporter intended for llama-micro, rebuilt from the manifest."""
    (method,) = manifest.methods
    states = [TensorSpec(n, state_dtype, [1, 2, SEQ, 16]) for n in manifest.llm.cache_tensors]
    return {"inputs": method.inputs, "outputs": method.outputs, "states": states, "dims": {"seq": [1, SEQ - 1]}}


def _with(specs: list[TensorSpec], name: str, **change) -> list[TensorSpec]:
    return [dataclasses.replace(s, **change) if s.name == name else s for s in specs]


def test_the_spec_check_compares_dtypes_and_shapes_not_only_names(export_once):
    artifact = export_once(CROSS_MODEL, "ios-coreml-ane-fp16").get()
    target, path, expect = load_target("ios-coreml-ane-fp16"), artifact.model_file, _expect(artifact.manifest)
    assert coreml.validate_package(path, target, expect)["status"] == "passed"
    wrong = {
        "input tokens is int32[1, [1, 63]], expected int64[1, [1, 63]]": {"inputs": _with(expect["inputs"], "tokens", dtype="int64")},
        "input input_pos is int32[[1, 63]], expected int32[[1, 64]]": {"dims": {"seq": [1, SEQ]}},
        "output logits is float32[1, 512], expected float16[1, 512]": {"outputs": _with(expect["outputs"], "logits", dtype="float16")},
        "output logits is float32[1, 512], expected float32[1, 511]": {"outputs": _with(expect["outputs"], "logits", shape=[1, 511])},
        "state key_cache_0 is float16[1, 2, 64, 16], expected float32[1, 2, 64, 16]": {"states": _expect(artifact.manifest, "float32")["states"]},
    }
    for problem, change in wrong.items():
        result = coreml.validate_package(path, target, expect | change)
        assert result["status"] == "failed" and problem in result["problems"], result["problems"]


def test_the_manifest_dtypes_are_what_the_package_declares(export_once):
    """fp16 compute precision must not turn the declared float32 I/O into fp16 (the manifest says float32)."""
    m = export_once(CROSS_MODEL, "ios-coreml-ane-int4").get().manifest
    assert [t.dtype for t in m.methods[0].outputs] == ["float32"]
    assert any(c.startswith("outputs logits: float32[1, 512]") for c in m.verification["spec_check"]["checks"])


def test_a_failed_spec_check_fails_the_export_and_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(coreml, "_quantize", lambda mlmodel, target: mlmodel)  # "forgets" the int4 weights
    torch.manual_seed(0)
    source = from_module("mlp", MLP().eval(), (torch.randn(2, 64),))
    target = load_target("ios-coreml-ane-int4")
    with pytest.raises(coreml.SpecCheckError) as err:
        export(source, target, tmp_path / "out", progress=False)
    message = str(err.value)
    assert "\n" not in message and message.startswith("Core ML spec check of ios-coreml-ane-int4 failed:")
    assert f"no {WEIGHT_OP} ops: the weights are not quantized" in message and "not kept" in message
    assert not (tmp_path / "out").exists()
    key = cache.cache_key(source.fingerprint, target.as_dict() | {"max_seq_len": target.max_seq_len}, cache.tool_versions())
    assert not cache.entry_dir(key).exists() and not list((tmp_path / "cache" / "artifacts").iterdir())


INT8_TARGET = """description = "Core ML int8 per-channel weights (test)"
runtime = "coreml"
platform = "ios"
delegates = ["ane", "cpu"]
quantization = "8w"
[options]
minimum_deployment_target = "iOS18"
"""


def test_coreml_int8_weights_export_and_pass_the_spec_check(tmp_path, export_once):
    (tmp_path / "ios-coreml-ane-int8.toml").write_text(INT8_TARGET)
    artifact = export(CROSS_MODEL, tmp_path / "ios-coreml-ane-int8.toml", tmp_path / "int8", max_seq_len=SEQ, progress=False)
    m = artifact.manifest
    assert m.quantization["weights"] == "int8" and m.quantization["activations"] == "fp16"
    check = m.verification["spec_check"]
    # per layer at least q, o, gate, up, down (coremltools leaves weights of <= 2048 elements float)
    assert check["status"] == "passed" and check["ops"][WEIGHT_OP] >= 2 * 5
    sizes = {t: export_once(CROSS_MODEL, t).get().manifest.model_file.size for t in ("ios-coreml-ane-fp16", "ios-coreml-ane-int4")}
    assert sizes["ios-coreml-ane-int4"] < m.model_file.size < 0.7 * sizes["ios-coreml-ane-fp16"]
