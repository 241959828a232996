"""Every shipped target exports the CI model (llama-micro); every artifact that can run here
passes its parity check; the others say "not verified on this host" and are checked
structurally. Results feed docs/support-matrix.md."""

from __future__ import annotations

import json
import zipfile

import pytest

from slmdeploy.errors import ExportError
from slmdeploy.export import list_targets, load_target
from slmdeploy.export.executorch.verify import FLOAT_TOLERANCE, QUANT_MIN_TOP1, QUANT_TOLERANCE
from export_matrix import CROSS_MODEL, FAMILY_OF, SEQ

TARGETS = [t.name for t in list_targets()]
# Targets whose export path another default target already takes (same runtime, delegate and scheme on
# another platform, or another llama.cpp file type): their cells are `pytest -m slow`.
SLOW_TARGETS = {"android-xnnpack-fp32", "android-xnnpack-8da4w", "gguf-f16", "gguf-q8_0", "gguf-q4_k_m"}
LAYERS = 2  # llama-micro
NEEDS_SDK = {"qnn": "QNN_SDK_ROOT", "mps": "removed in 1.5"}


def _toolchain_blocked(target) -> str | None:
    """The delegate whose toolchain this host lacks (QNN SDK, the removed MPS delegate)."""
    from slmdeploy.export.executorch import lower

    if "mps" in target.delegates:
        return "mps"
    if "qnn" in target.delegates and lower.qnn_sdk_problem():
        return "qnn"
    return None


def test_the_shipped_targets_cover_every_recipe_of_the_issue():
    assert {
        "android-xnnpack-fp32", "android-xnnpack-8da4w", "android-vulkan-fp16", "android-qnn-sm8650",
        "ios-coreml-ane-fp16", "ios-coreml-ane-int4", "ios-mps-fp16", "ios-executorch-coreml",
        "tflite-xnnpack-fp32", "tflite-int8", "tflite-int4", "host-xnnpack", "ios17-coreml-ane-fp16",
    } <= set(TARGETS)


def _check_file_format(artifact) -> None:
    head = artifact.model_file.read_bytes()[:8]
    runtime = artifact.manifest.runtime
    if runtime == "executorch":
        assert head[4:8] == b"ET12", "a .pte is an ExecuTorch flatbuffer"
    elif runtime == "tflite":
        assert head[4:8] == b"TFL3", "a .tflite is a TFLite flatbuffer"
    elif runtime == "llamacpp":
        assert head[:4] == b"GGUF", "a .gguf starts with its magic"
    else:
        with zipfile.ZipFile(artifact.model_file) as zf:
            names = zf.namelist()
        # stateful (iOS 18): one package; KV cache as I/O (before iOS 18): one package per method
        packages = ["model"] if artifact.manifest.llm.kv_cache == "state" else ["prefill", "decode"]
        for package in packages:
            assert f"{package}.mlpackage/Manifest.json" in names
            assert f"{package}.mlpackage/Data/com.apple.CoreML/model.mlmodel" in names
            assert f"{package}.mlpackage/Data/com.apple.CoreML/weights/weight.bin" in names


def _check_verdict(target, manifest) -> None:
    v = manifest.verification
    runnable = target.runtime in ("tflite", "llamacpp") or (
        target.runtime == "executorch" and set(target.delegates) <= {"xnnpack", "portable"}
    )
    if not runnable:
        assert v["status"] == "not verified on this host" and v["reason"]
        assert "relative_diff" not in v, "nothing ran, so there is no number"
        if target.runtime == "coreml":
            assert v["spec_check"]["status"] == "passed", v["spec_check"]["problems"]
        return
    assert v["status"] == "passed", v
    if target.runtime == "llamacpp":  # as benchmarked (f16 KV cache, flash attention) and the exact conversion
        from slmdeploy.export.llamacpp.verify import CONVERSION_TOLERANCE, TOLERANCES

        key = "relative_diff" if target.quantization == "fp32" else "relative_diff_vs_quantized_eager"
        assert v[key] <= TOLERANCES[target.quantization]
        assert v["conversion"][key] <= CONVERSION_TOLERANCE[target.quantization]
        if target.quantization == "fp32":
            assert v["top1_agreement"] == 1.0
            return
    if target.quantization == "fp32":
        assert v["relative_diff"] <= FLOAT_TOLERANCE and v["top1_agreement"] == 1.0
    else:
        assert v["top1_agreement_vs_quantized_eager"] >= QUANT_MIN_TOP1
        assert v["relative_diff_vs_quantized_eager"] <= QUANT_TOLERANCE
        assert v["relative_diff"] > v["relative_diff_vs_quantized_eager"] / 10, "a quantized model differs from float"


def _check_delegation(target, d) -> None:
    assert d, "every artifact reports its delegation"
    if target.runtime == "llamacpp":  # libllama builds its graph at run time; every op on ggml's CPU backend
        assert d["backend"] == "ggml-cpu" and d["fallback_ops"] == {}
        return
    if target.runtime == "coreml":
        assert d["delegated_fraction"] == 1.0 and d["fallback_ops"] == {}
        return
    if "portable" in target.delegates:
        assert d["delegated_nodes"] == 0 and d["fallback_ops"] == {} and d["portable_ops"]
        return
    assert d["delegated_nodes"] > 0 and 0 < d["delegated_fraction"] <= 1
    assert sum(b["nodes"] for b in d["by_delegate"].values()) == d["delegated_nodes"]
    if target.runtime == "tflite":
        # XNNPACK takes the matmuls; the cache writes stay on the TFLite CPU kernels.
        assert d["by_delegate"]["xnnpack"]["subgraphs"] >= 1 and "DYNAMIC_UPDATE_SLICE" in d["fallback_ops"]
        if "gpu" in target.delegates:
            assert d["gpu_compatibility"]["compatible"], d["gpu_compatibility"]["warnings"]
    elif "coreml" in target.delegates:
        assert d["delegated_fraction"] == 1.0 and d["fallback_ops"] == {}, "Core ML takes the whole decoder"
        assert list(d["by_delegate"]) == ["CoreMLBackend"]
    elif "vulkan" in target.delegates:
        assert "VulkanBackend" in d["by_delegate"] and "aten_index_put_default" in d["fallback_ops"]
    else:  # XNNPACK: KV-cache writes (index_put) fall back to portable kernels
        assert "XnnpackBackend" in d["by_delegate"] and "aten_index_put_default" in d["fallback_ops"]


def _check_llm_spec(target, manifest) -> None:
    llm = manifest.llm
    assert llm.max_seq_len == SEQ and llm.vocab_size == 512
    if target.runtime == "tflite":
        assert (llm.prefill_method, llm.decode_method, llm.dynamic_prefill) == ("prefill", "decode", False)
        assert llm.prefill_seq_len == min(target.options["prefill_len"], SEQ // 2) and llm.kv_cache == "io"
        assert llm.cache_tensors == [f"{k}_cache_{i}" for i in range(LAYERS) for k in ("k", "v")]
        prefill = manifest.methods[0]
        assert [t.shape for t in prefill.inputs[:2]] == [[1, llm.prefill_seq_len], [llm.prefill_seq_len]]
        assert [t.name for t in prefill.outputs] == ["logits", *llm.cache_tensors]
    elif target.runtime == "coreml" and llm.kv_cache == "state":
        assert target.options["minimum_deployment_target"] in ("iOS18", "macOS15")
        assert len(llm.cache_tensors) == 2 * LAYERS and llm.cache_shape == [1, 2, SEQ, 16]
    elif target.runtime == "coreml":  # before iOS 18: slmdeploy.llm-kvio/1, as TFLite, in two fixed-shape packages
        assert target.options["minimum_deployment_target"] not in ("iOS18", "macOS15")
        assert (llm.convention, llm.kv_cache, llm.dynamic_prefill) == ("slmdeploy.llm-kvio/1", "io", False)
        assert (llm.prefill_method, llm.decode_method) == ("prefill", "decode")
        assert llm.prefill_seq_len == min(target.options.get("prefill_len", 128), SEQ // 2)
        assert llm.cache_tensors == [f"{k}_cache_{i}" for i in range(LAYERS) for k in ("k", "v")]
        assert llm.cache_outputs == [f"{n}_out" for n in llm.cache_tensors]
        assert llm.cache_shape == [1, 2, SEQ, 16] and llm.cache_dtype == ("float32" if target.quantization == "fp32" else "float16")
        prefill, decode = manifest.methods
        assert [t.shape for t in prefill.inputs[:2]] == [[1, llm.prefill_seq_len], [llm.prefill_seq_len]]
        assert [t.shape for t in decode.inputs[:2]] == [[1, 1], [1]]
        for method in (prefill, decode):
            assert [(t.name, t.dtype, t.shape) for t in method.inputs[2:]] == [(n, llm.cache_dtype, llm.cache_shape) for n in llm.cache_tensors]
            assert [t.name for t in method.outputs] == ["logits", *llm.cache_outputs]
    elif target.runtime == "llamacpp":
        assert (llm.convention, llm.prefill_method, llm.kv_cache, llm.cache_dtype) == (
            "llama.cpp/gguf", "llama_decode", "runtime", "float16")
    else:
        assert (llm.prefill_method, llm.kv_cache, llm.dynamic_prefill) == ("forward", "internal", True)
        # read from the exported program's mutated buffers: 2 kv heads (of 4), SEQ positions, head size 16
        assert llm.cache_shape == [1, 2, SEQ, 16] and len(llm.cache_tensors) == 2 * LAYERS


@pytest.mark.parametrize("name", [pytest.param(t, marks=pytest.mark.slow) if t in SLOW_TARGETS else t for t in TARGETS])
def test_every_shipped_target_exports_the_ci_model(name, export_once, support_matrix, request):
    target = load_target(name)
    outcome = export_once(CROSS_MODEL, name)
    blocked = _toolchain_blocked(target)
    with support_matrix.checking(target, FAMILY_OF[CROSS_MODEL], CROSS_MODEL, request.node.nodeid, outcome,
                                 status="toolchain missing" if blocked and outcome.error else None):
        _check_target(name, target, outcome, blocked)


def _check_target(name: str, target, outcome, blocked: str | None) -> None:
    if blocked:
        assert isinstance(outcome.error, ExportError) and NEEDS_SDK[blocked] in str(outcome.error)
        assert "\n" not in str(outcome.error)
        return
    artifact = outcome.get()
    m = artifact.manifest
    assert (m.runtime, tuple(m.delegates), m.target["name"]) == (target.runtime, target.delegates, name)
    if target.runtime == "llamacpp":  # llama.cpp's file types map onto the cross-runtime schemes
        from slmdeploy.export.llamacpp.quantize import scheme

        assert m.quantization["scheme"] == scheme(target.quantization)
    else:
        assert m.quantization["scheme"] == target.quantization
    _check_file_format(artifact)
    _check_llm_spec(target, m)
    _check_delegation(target, m.delegation)
    _check_verdict(target, m)
    artifact.verify()  # sizes and sha256 in the manifest match the files


def test_int4_artifacts_are_smaller_than_int8_and_float(export_once):
    size = {t: export_once(CROSS_MODEL, t).get().model_file.stat().st_size for t in ("tflite-xnnpack-fp32", "tflite-int8", "tflite-int4")}
    assert size["tflite-int4"] < size["tflite-int8"] < size["tflite-xnnpack-fp32"]
    coreml = {t: export_once(CROSS_MODEL, t).get().model_file.stat().st_size for t in ("ios-coreml-ane-fp16", "ios-coreml-ane-int4")}
    assert coreml["ios-coreml-ane-int4"] < coreml["ios-coreml-ane-fp16"] * 0.6


def test_tflite_greedy_generation_matches_eager_pytorch(export_once):
    """Independent of the exporter's own check: drive the two signatures like a runtime would."""
    import numpy as np
    import torch
    from ai_edge_litert.interpreter import Interpreter

    from slmdeploy.export.executorch.llm_module import StaticCacheLM
    from slmdeploy.export.source import from_zoo

    artifact = export_once(CROSS_MODEL, "tflite-xnnpack-fp32").get()
    llm = artifact.manifest.llm
    # "passed" speaks for the CPU path it ran on; the GPU and NNAPI it may also run with are named unchecked
    v = artifact.manifest.verification
    assert v["status"] == "passed" and "XNNPACK" in v["checked_on"]
    assert set(v["not_verified_delegates"]) == {"gpu", "nnapi"} and "Android" in v["not_verified_delegates"]["nnapi"]
    # the kvio convention, stated as Core ML's I/O-cache artifacts state it
    assert llm.kv_cache == "io" and llm.cache_outputs == llm.cache_tensors and llm.cache_dtype == "float32"
    assert len(llm.cache_shape) == 4 and llm.cache_shape[2] == llm.max_seq_len
    interp = Interpreter(model_path=str(artifact.model_file))
    assert set(interp.get_signature_list()) == {"prefill", "decode"}
    prefill, decode = interp.get_signature_runner("prefill"), interp.get_signature_runner("decode")
    eager = StaticCacheLM(from_zoo(CROSS_MODEL).build(), SEQ).eval()
    prompt = torch.randint(0, 512, (1, llm.prefill_seq_len), generator=torch.Generator().manual_seed(5))
    cache = {n: np.zeros(prefill.get_input_details()[n]["shape"], np.float32) for n in llm.cache_tensors}
    out = prefill(tokens=prompt.numpy().astype(np.int32), input_pos=np.arange(llm.prefill_seq_len, dtype=np.int32), **cache)
    with torch.no_grad():
        ref = eager(prompt, torch.arange(llm.prefill_seq_len))
    ours, theirs = [int(out["logits"].argmax())], [int(ref.argmax())]
    for step in range(8):
        pos = llm.prefill_seq_len + step
        cache = {n: out[n] for n in llm.cache_tensors}
        out = decode(tokens=np.array([[ours[-1]]], np.int32), input_pos=np.array([pos], np.int32), **cache)
        with torch.no_grad():
            ref = eager(torch.tensor([[theirs[-1]]]), torch.tensor([pos]))
        assert np.abs(out["logits"] - ref.numpy()).max() < 1e-4
        ours.append(int(out["logits"].argmax()))
        theirs.append(int(ref.argmax()))
    assert ours == theirs


def test_coreml_package_declares_a_stateful_fp16_kv_cache(export_once, tmp_path):
    import coremltools as ct

    artifact = export_once(CROSS_MODEL, "ios-coreml-ane-fp16").get()
    with zipfile.ZipFile(artifact.model_file) as zf:
        zf.extractall(tmp_path)
    spec = ct.models.MLModel(str(tmp_path / "model.mlpackage"), skip_model_load=True).get_spec()
    states = {s.name: s.type.stateType.arrayType for s in spec.description.state}
    assert set(states) == {f"{k}_cache_{i}" for i in range(LAYERS) for k in ("key", "value")}
    kv_heads, head_dim = 2, 16  # llama-micro: 4 heads of 64/4, 2 KV heads
    assert all(list(a.shape) == [1, kv_heads, SEQ, head_dim] for a in states.values())
    assert all(a.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT16 for a in states.values())
    tokens = spec.description.input[0].type.multiArrayType
    assert tokens.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
    assert (tokens.shapeRange.sizeRanges[1].lowerBound, tokens.shapeRange.sizeRanges[1].upperBound) == (1, SEQ - 1)


def test_export_prints_delegation_and_the_verdict(export_once, tmp_path):
    """`slmdeploy export` prints what each delegate took and what fell back (a cache hit here)."""
    from click.testing import CliRunner

    from slmdeploy.cli.main import cli

    export_once(CROSS_MODEL, "tflite-int4").get()
    args = ["export", CROSS_MODEL, "-t", "tflite-int4", "--max-seq-len", str(SEQ), "--out", str(tmp_path / "a")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "(cache hit)" in result.stdout
    caches = 2 * LAYERS * 2  # (k, v) per layer, in both signatures (prefill and decode)
    assert "fallback to CPU kernels: " in result.stdout and f"DYNAMIC_UPDATE_SLICE×{caches}" in result.stdout
    assert "xnnpack" in result.stdout.split("delegation:")[1].splitlines()[0]
    assert "parity vs eager PyTorch: passed" in result.stdout
    result = CliRunner().invoke(cli, args + ["--json"])
    manifest = json.loads(result.stdout)["manifest"]
    assert manifest["delegation"]["fallback_ops"]["DYNAMIC_UPDATE_SLICE"] == caches
    assert set(manifest["delegation"]["by_signature"]) == {"prefill", "decode"}
