"""The Core ML spec check: interface names, dtypes and shapes (states too) against what the
exporter intended; a failed check fails the export and caches nothing; int8 weights."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from export_matrix import CROSS_MODEL, MLP, SEQ

from slmdeploy.export import cache, export, from_module, load_target
from slmdeploy.export.coreml import exporter as coreml
from slmdeploy.export.coreml import io_cache, spec_check
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
    assert spec_check.validate_package(path, target, expect)["status"] == "passed"
    wrong = {
        "input tokens is int32[1, [1, 63]], expected int64[1, [1, 63]]": {"inputs": _with(expect["inputs"], "tokens", dtype="int64")},
        "input input_pos is int32[[1, 63]], expected int32[[1, 64]]": {"dims": {"seq": [1, SEQ]}},
        "output logits is float32[1, 512], expected float16[1, 512]": {"outputs": _with(expect["outputs"], "logits", dtype="float16")},
        "output logits is float32[1, 512], expected float32[1, 511]": {"outputs": _with(expect["outputs"], "logits", shape=[1, 511])},
        "state key_cache_0 is float16[1, 2, 64, 16], expected float32[1, 2, 64, 16]": {"states": _expect(artifact.manifest, "float32")["states"]},
    }
    for problem, change in wrong.items():
        result = spec_check.validate_package(path, target, expect | change)
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
    with pytest.raises(spec_check.SpecCheckError) as err:
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


# Before iOS 18 (no Core ML state): the KV cache is model I/O, prefill and decode are two fixed-shape packages.
IOS17 = "ios17-coreml-ane-fp16"
FP16 = "FLOAT16"


def test_an_ios17_package_loads_back_with_the_kv_cache_as_inputs_and_outputs(export_once, tmp_path):
    """Read the zip with coremltools directly (not through the exporter's own check)."""
    import zipfile

    import coremltools as ct

    artifact = export_once(CROSS_MODEL, IOS17).get()
    llm = artifact.manifest.llm
    with zipfile.ZipFile(artifact.model_file) as zf:
        zf.extractall(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decode.mlpackage", "prefill.mlpackage"]
    array_type = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name
    cache_shape = [1, 2, SEQ, 16]  # llama-micro: 2 KV heads of 16
    assert (llm.cache_dtype, llm.cache_shape) == ("float16", cache_shape)
    for name, seq in (("prefill", llm.prefill_seq_len), ("decode", 1)):
        spec = ct.models.MLModel(str(tmp_path / f"{name}.mlpackage"), skip_model_load=True).get_spec()
        assert spec.WhichOneof("Type") == "mlProgram" and spec.specificationVersion == 8  # iOS 17
        assert not spec.description.state, "no Core ML state before iOS 18"
        ins = [(f.name, array_type(f.type.multiArrayType.dataType), list(f.type.multiArrayType.shape)) for f in spec.description.input]
        outs = [(f.name, array_type(f.type.multiArrayType.dataType), list(f.type.multiArrayType.shape)) for f in spec.description.output]
        assert ins == [("tokens", "INT32", [1, seq]), ("input_pos", "INT32", [seq])] + [(n, FP16, cache_shape) for n in llm.cache_tensors]
        assert outs == [("logits", "FLOAT32", [1, 512])] + [(n, FP16, cache_shape) for n in llm.cache_outputs]
        assert not any(f.type.multiArrayType.shapeRange.sizeRanges for f in spec.description.input), "fixed shapes (ANE)"
        ops = spec_check._ops(spec)
        assert not {"read_state", "write_state", "slice_update"} & set(ops), "iOS 18 ops in an iOS 17 package"
    check = artifact.manifest.verification["spec_check"]
    assert check["status"] == "passed" and set(check["packages"]) == {"prefill", "decode"}
    assert artifact.manifest.verification["status"] == "not verified on this host"


def test_the_ios17_spec_check_catches_a_wrong_cache_interface(export_once):
    artifact = export_once(CROSS_MODEL, IOS17).get()
    target, path = load_target(IOS17), artifact.model_file
    expects = {m.name: {"inputs": m.inputs, "outputs": m.outputs, "states": [], "dims": {}} for m in artifact.manifest.methods}
    assert spec_check.validate_packages(path, target, expects)["status"] == "passed"
    decode = expects["decode"]
    wrong = {
        "decode: input k_cache_1 is float16[1, 2, 64, 16], expected float32[1, 2, 64, 16]":
            {"decode": decode | {"inputs": _with(decode["inputs"], "k_cache_1", dtype="float32")}},
        "decode: output v_cache_0_out is float16[1, 2, 64, 16], expected float16[1, 2, 32, 16]":
            {"decode": decode | {"outputs": _with(decode["outputs"], "v_cache_0_out", shape=[1, 2, 32, 16])}},
        "decode: states are [], expected ['k_cache_0']":
            {"decode": decode | {"states": [TensorSpec("k_cache_0", "float16", [1, 2, 64, 16])]}},
        "the zip holds packages ['decode', 'prefill'], expected ['decode', 'extra', 'prefill']":
            {"extra": decode},
    }
    for problem, change in wrong.items():
        try:
            result = spec_check.validate_packages(path, target, expects | change)
        except spec_check.SpecCheckError as err:  # the missing package itself
            assert "extra" in change and "holds no extra.mlpackage" in str(err)
            continue
        assert result["status"] == "failed" and problem in result["problems"], result["problems"]


def test_int4_weights_for_ios17_are_refused_naming_what_works(tmp_path, monkeypatch):
    from slmdeploy.errors import UnknownTargetError
    from slmdeploy.export.source import ModelSource

    monkeypatch.setattr(ModelSource, "build", lambda self: pytest.fail("built a model for an impossible target"))
    path = tmp_path / "ios17-int4.toml"
    path.write_text(INT8_TARGET.replace('"8w"', '"4w"').replace('"iOS18"', '"iOS17"'))
    with pytest.raises(UnknownTargetError) as err:
        export(CROSS_MODEL, path, tmp_path / "out", max_seq_len=SEQ, progress=False)
    message = str(err.value)
    assert "\n" not in message and "int4 block-wise weights (4w) need the iOS18/macOS15 opset, not iOS17" in message
    assert 'use quantization = "8w" (int8 per-channel weights)' in message and 'minimum_deployment_target = "iOS18"' in message
    assert not (tmp_path / "out").exists()


def test_coreml_int8_weights_for_ios17_use_the_ios16_quantization_op(tmp_path):
    path = tmp_path / "ios17-int8.toml"
    path.write_text(INT8_TARGET.replace('"iOS18"', '"iOS17"'))
    m = export(CROSS_MODEL, path, tmp_path / "int8", max_seq_len=SEQ, progress=False).manifest
    check = m.verification["spec_check"]
    assert check["status"] == "passed" and m.llm.kv_cache == "io" and m.llm.cache_dtype == "float16"
    for package in ("prefill", "decode"):  # per layer at least q, o, gate, up, down, in each package
        assert check["packages"][package]["ops"].get("constexpr_affine_dequantize", 0) >= 2 * 5
    assert WEIGHT_OP not in check["ops"], "the iOS 18 blockwise op in an iOS 17 package"


@pytest.mark.parametrize("model_name", [CROSS_MODEL, "gemma2-tiny"])  # gemma2: the additive mask, soft-capping
def test_the_io_cache_computation_matches_eager_pytorch(model_name):
    """What is converted for iOS 16/17 (cache as I/O, one-hot writes), run in eager PyTorch and
    driven like a runtime would (prefill, then decode passing each call's caches on), against
    transformers' StaticCache: Core ML cannot run here, so this is the check of the graph's maths."""
    from slmdeploy.export.executorch.llm_module import StaticCacheLM
    from slmdeploy.export.source import from_zoo

    model = from_zoo(model_name).build()
    vocab = int(model.config.vocab_size)
    reference = StaticCacheLM(copy.deepcopy(model), SEQ).eval()
    wrapped = io_cache.io_cache_model(model, SEQ)
    names, prefill = wrapped.cache_names(), 8
    prompt = torch.randint(0, vocab, (1, prefill), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = wrapped(prompt, torch.arange(prefill), **dict(zip(names, wrapped.empty_cache())))
        ref = reference(prompt, torch.arange(prefill))
        assert torch.allclose(out["logits"], ref, atol=1e-5)
        assert not out["k_cache_0"][:, :, prefill:].any(), "only the prompt's slots are written"
        token = int(ref.argmax())
        for pos in range(prefill, prefill + 8):
            out = wrapped(torch.tensor([[token]]), torch.tensor([pos]), **{n: out[n] for n in names})
            ref = reference(torch.tensor([[token]]), torch.tensor([pos]))
            assert torch.allclose(out["logits"], ref, atol=1e-5), pos
            token = int(ref.argmax())
