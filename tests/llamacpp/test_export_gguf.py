"""GGUF export: llama.cpp's converter and quantizer, the manifest, and a parity verdict that can fail."""

from __future__ import annotations

import copy

import pytest

from slmdeploy.errors import ExportError, UnknownTargetError


def test_f32_gguf_is_the_exact_conversion(gguf_f32):
    m = gguf_f32.manifest
    assert m.runtime == "llamacpp" and gguf_f32.model_file.name == "model.gguf"
    assert gguf_f32.model_file.read_bytes()[:4] == b"GGUF"
    assert m.llm.convention == "llama.cpp/gguf" and m.llm.kv_cache == "runtime" and m.llm.cache_dtype == "float16"
    q = m.quantization
    assert q["scheme"] == "fp32" and q["tensor_types"] == {"F32": 39} and q["bits_per_weight"] == 32.0
    v = m.verification
    assert v["status"] == "passed", v
    # f32 KV cache, no flash attention: the converted weights compute what eager PyTorch computes
    assert v["conversion"]["relative_diff"] < 1e-4 and v["conversion"]["top1_agreement"] == 1.0
    # as benchmarked (f16 KV cache, flash attention): within the fp32 tolerance, and not exact
    assert 1e-5 < v["relative_diff"] <= 5e-3
    assert m.delegation["fallback_ops"] == {} and m.tools["llama-cpp-python"] == "0.3.36"


def test_q4_0_is_8da4w_with_llama_cpps_own_mix(gguf_q4_0):
    q = gguf_q4_0.manifest.quantization
    assert (q["scheme"], q["weights"], q["group_size"], q["ggml_ftype"]) == ("8da4w", "int4", 32, "MOSTLY_Q4_0")
    # llama_model_quantize's default mix: the output matrix in Q6_K, the embeddings in Q4_0, norms f32
    assert q["output"] == "Q6_K" and q["embeddings"] == "Q4_0"
    assert q["tensor_types"]["Q4_0"] >= 28 and q["tensor_types"]["F32"] == 9
    assert 4.5 <= q["bits_per_weight"] < 6.0  # 4-bit values + an fp16 scale per 32, plus the Q6_K output
    f32_size = gguf_q4_0.model_file.stat().st_size
    assert f32_size < 0.25 * 4 * gguf_q4_0.manifest.model["params"]
    v = gguf_q4_0.manifest.verification
    assert v["status"] == "passed", v
    # judged against the eager twin with the file's own (dequantized) weights: far closer than to the float model
    assert v["relative_diff_vs_quantized_eager"] < 0.05 and v["top1_agreement_vs_quantized_eager"] >= 0.8
    assert v["relative_diff"] > 2 * v["relative_diff_vs_quantized_eager"]


def test_the_twin_holds_the_files_weights_in_pytorchs_row_order(gguf_q4_0):
    """llama's q/k rows are permuted by the converter: the twin must undo it, and a wrong order is refused."""
    import numpy as np

    from slmdeploy.export.llamacpp import reference
    from slmdeploy.export.source import resolve

    source = resolve("llama-tiny")
    model = source.build()
    twin = reference.twin(model, gguf_q4_0.model_file, source.config)
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"):
        w = dict(model.named_parameters())[name].detach().numpy()
        t = dict(twin.named_parameters())[name].detach().numpy()
        assert 0.02 < np.linalg.norm(t - w) / np.linalg.norm(w) < 0.25  # int4 error, not a wrong row order
    # a model whose weights are not the file's cannot be mapped onto it
    other = copy.deepcopy(model)
    for p in other.parameters():
        p.data.normal_()
    with pytest.raises(ExportError, match="does not match"):
        reference.twin(other, gguf_q4_0.model_file, source.config)


def test_the_verdict_fails_when_the_file_is_not_the_model(gguf_f32):
    """The check has teeth: the same file against another model's eager logits fails."""
    import torch

    from slmdeploy.export.executorch.llm_module import StaticCacheLM
    from slmdeploy.export.llamacpp import verify
    from slmdeploy.export.source import resolve

    model = resolve("llama-tiny").build()
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.mul_(1.5)
    result = verify.verify_llm(gguf_f32.model_file, "fp32", 256, StaticCacheLM(model, 256).eval())
    assert result["status"] == "failed" and result["conversion"]["relative_diff"] > 1e-3


def test_gguf_targets_are_checked_when_loaded(tmp_path):
    from slmdeploy.export.target import load_target

    assert load_target("gguf-q4_k_m").quantization == "q4_k_m"
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\nruntime = "llamacpp"\nplatform = "any"\ndelegates = ["cpu"]\n'
                   'quantization = "q5_0"\n')
    with pytest.raises(UnknownTargetError, match="'q5_0' is not available for llamacpp"):
        load_target(bad)
    bad.write_text('description = "x"\nruntime = "tflite"\nplatform = "any"\ndelegates = ["xnnpack"]\n'
                   'quantization = "q4_0"\n')
    with pytest.raises(UnknownTargetError, match="'q4_0' is not available for tflite"):
        load_target(bad)


def test_a_module_is_refused_in_one_line(lookup_model, tmp_path):
    from slmdeploy.export import export
    from slmdeploy.export.source import from_module

    module, inputs = lookup_model
    with pytest.raises(ExportError, match="GGUF files, which hold decoder LLMs"):
        export(from_module("lookup", module, inputs), "gguf-f16", tmp_path / "out", progress=False)
