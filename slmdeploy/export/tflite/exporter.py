"""LiteRT (TFLite) through litert-torch: prefill + decode signatures sharing one KV cache.

The decoder is wrapped with an *I/O* cache (``PositionedCacheLM(cache="io")``): both
signatures take the cache tensors ``k_cache_i``/``v_cache_i`` as inputs and return them
updated (``tfl.DYNAMIC_UPDATE_SLICE`` at ``input_pos[0]``), so a runtime passes one
signature's cache outputs to the next call — the two signatures share the weights
(litert-torch de-duplicates the constants) and the cache layout. ``prefill`` has a fixed
length ``P`` (the ``prefill_len`` option, at most half the cache), ``decode`` one token.

Quantization runs on the converted model with ai-edge-quantizer: dynamic-range int8
(``8da8w``: int8 per-channel weights, activations quantized at run time), int4 block-wise
(``8da4w``) or int8 weight-only (``8w``), all on ``FULLY_CONNECTED`` ops (the linear
layers; embeddings stay float, as in the ExecuTorch schemes).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from slmdeploy.errors import ExportError
from slmdeploy.export.executorch.exporter import ExportResult, Stage, check_seq_len, quiet_library_output
from slmdeploy.export.executorch.kv_cache import PositionedCacheLM
from slmdeploy.export.executorch.llm_module import StaticCacheLM
from slmdeploy.export.manifest import LLM_KV_IO_CONVENTION, LLMSpec, MethodSpec, TensorSpec
from slmdeploy.export.source import ModelSource
from slmdeploy.export.target import Target
from slmdeploy.export.tflite import reference as reference_quant

MODEL_FILE = "model.tflite"
DEFAULT_PREFILL = 128


def describe(target: Target) -> dict[str, Any]:
    scheme = target.quantization
    if scheme == "fp32":
        return {"scheme": "fp32", "weights": "fp32", "activations": "fp32"}
    desc = {
        "scheme": scheme,
        "weights": "int4" if scheme == "8da4w" else "int8",
        "activations": "fp32" if scheme == "8w" else "int8 dynamic",
        "method": "ai-edge-quantizer " + ("weight-only" if scheme == "8w" else "dynamic range") + " (FULLY_CONNECTED)",
    }
    if scheme == "8da4w":
        desc["group_size"] = int(target.options.get("group_size", 32))
    return desc


def _quantize(path: Path, target: Target) -> None:
    """Quantize the .tflite at ``path`` in place."""
    if target.quantization == "fp32":
        return
    from ai_edge_quantizer import quantizer, qtyping

    fc = qtyping.TFLOperationName.FULLY_CONNECTED
    qt = quantizer.Quantizer(str(path))
    if target.quantization == "8w":
        qt.add_weight_only_config(regex=".*", operation_name=fc, num_bits=8)
    elif target.quantization == "8da8w":
        qt.add_dynamic_config(regex=".*", operation_name=fc, num_bits=8)
    else:
        group = int(target.options.get("group_size", 32))
        qt.add_dynamic_config(regex=".*", operation_name=fc, num_bits=4,
                              granularity=getattr(qtyping.QuantGranularity, f"BLOCKWISE_{group}"))
    with quiet_library_output():
        result = qt.quantize()
    path.write_bytes(bytes(result.quantized_model))
    if target.quantization == "8da4w":
        _fix_zero_block_scales(path)


def _fix_zero_block_scales(path: Path) -> int:
    """Give all-zero int4 blocks a positive scale; returns how many scale buffers changed.

    A weight block that is all zeros (e.g. the padding row of a tied embedding) gets scale 0
    from ai-edge-quantizer, and XNNPACK refuses to load a blockwise tensor with a zero scale.
    The block's quantized values are all 0, so any positive scale dequantizes to the same zeros.
    """
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    raw = bytearray(path.read_bytes())
    model = schema.ModelT.InitFromPackedBuf(raw, 0)
    dtypes = {schema.TensorType.FLOAT16: np.float16, schema.TensorType.FLOAT32: np.float32}
    changed: set[int] = set()
    inline = False
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            q = tensor.quantization
            if q is None or q.detailsType != schema.QuantizationDetails.BlockwiseQuantization:
                continue
            scales = subgraph.tensors[q.details.scales]
            buffer = model.buffers[scales.buffer]
            if scales.buffer in changed or scales.type not in dtypes:
                continue
            dtype = np.dtype(dtypes[scales.type])
            if buffer.data is not None:  # inside the flatbuffer: patched in the object tree, re-packed below
                values = np.frombuffer(bytes(bytearray(buffer.data)), dtype=dtype).copy()
            elif buffer.offset:  # appended after the flatbuffer (the converter's layout): patched in place
                values = np.frombuffer(raw, dtype=dtype, count=buffer.size // dtype.itemsize, offset=buffer.offset)
            else:
                continue
            if (values == 0).any():
                values[values == 0] = 1.0
                changed.add(scales.buffer)
                if buffer.data is not None:
                    buffer.data, inline = np.frombuffer(values.tobytes(), dtype=np.uint8), True
    if inline and not any(b.offset for b in model.buffers):  # re-packing would drop appended buffers
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        raw = bytearray(builder.Output())
    if changed:
        path.write_bytes(bytes(raw))
    return len(changed)


def _twin(model, target: Target):
    """The target's quantization applied to a copy of ``model`` in eager PyTorch (None for fp32)."""
    if target.quantization == "fp32":
        return None
    group = int(target.options.get("group_size", 32))
    return reference_quant.apply(copy.deepcopy(model), target.quantization, group).eval()


def prefill_len(target: Target, max_seq_len: int) -> int:
    """The prefill signature's fixed length: the target's ``prefill_len``, at most half the cache."""
    return max(1, min(int(target.options.get("prefill_len", DEFAULT_PREFILL)), max_seq_len // 2))


def _convert(signatures: list[tuple[str, torch.nn.Module, dict[str, torch.Tensor] | tuple]], path: Path) -> None:
    import litert_torch

    converter = litert_torch.Converter()
    for name, module, sample in signatures:
        if isinstance(sample, dict):
            converter.signature(name, module, sample_kwargs=sample)
        else:
            converter.signature(name, module, sample_args=sample)
    try:
        with quiet_library_output():
            converter.convert().export(str(path))
    except Exception as err:  # converter errors are long; keep the first line
        raise ExportError(f"litert-torch could not convert the model: {str(err).strip().splitlines()[0]}") from err


def export_llm(source: ModelSource, target: Target, max_seq_len: int, out_dir: Path, stage: Stage) -> ExportResult:
    check_seq_len(source, max_seq_len)
    length = prefill_len(target, max_seq_len)
    with stage("build model"):
        model = source.build()
        reference = StaticCacheLM(copy.deepcopy(model), max_seq_len).eval()
        twin = _twin(model, target)
        quantized_reference = StaticCacheLM(twin, max_seq_len).eval() if twin is not None else None
        wrapped = PositionedCacheLM(model, max_seq_len, write="dus", cache="io").eval()
    path = out_dir / MODEL_FILE
    with stage("convert with litert-torch (prefill + decode)"), torch.no_grad():
        _convert([("prefill", wrapped, wrapped.example_kwargs(length)), ("decode", wrapped, wrapped.example_kwargs(1))], path)
    with stage(f"quantize ({target.quantization}, ai-edge-quantizer)"):
        _quantize(path, target)
    with stage("delegation on this host (XNNPACK) + GPU compatibility"):
        from slmdeploy.export.tflite import verify

        report = verify.delegation_report(path, target)
    vocab = int(source.config["vocab_size"])
    cache = [TensorSpec(name, "float32", list(wrapped.cache_shape())) for name in wrapped.cache_names()]

    def method(name: str, seq: int) -> MethodSpec:
        inputs = [TensorSpec("tokens", "int32", [1, seq]), TensorSpec("input_pos", "int32", [seq]), *cache]
        return MethodSpec(name, inputs, [TensorSpec("logits", "float32", [1, vocab]), *cache])

    return ExportResult(
        files=[(path, "model")],
        methods=[method("prefill", length), method("decode", 1)],
        quantization=describe(target),
        llm=LLMSpec(convention=LLM_KV_IO_CONVENTION, max_seq_len=max_seq_len, vocab_size=vocab,
                    prefill_method="prefill", decode_method="decode", dynamic_prefill=False,
                    prefill_seq_len=length, kv_cache="io", cache_tensors=wrapped.cache_names(),
                    cache_dtype="float32", cache_shape=list(wrapped.cache_shape()),
                    cache_outputs=wrapped.cache_names()),  # LiteRT: an output may share its input's name
        delegation=report,
        reference=reference,
        quantized_reference=quantized_reference,
        program=path,
    )


def export_module(source: ModelSource, target: Target, out_dir: Path, stage: Stage) -> ExportResult:
    """Any nn.Module with example inputs: one ``serving_default`` signature with the example shapes."""
    with stage("build model"):
        model = source.build()
        reference = copy.deepcopy(model).eval()
        twin = _twin(model, target)
    example = source.example_inputs or ()
    path = out_dir / MODEL_FILE
    with stage("convert with litert-torch"), torch.no_grad():
        _convert([("serving_default", model, tuple(example))], path)
    with stage(f"quantize ({target.quantization}, ai-edge-quantizer)"):
        _quantize(path, target)
    with stage("delegation on this host (XNNPACK) + GPU compatibility"):
        from slmdeploy.export.tflite import verify

        report = verify.delegation_report(path, target)
    spec_in, spec_out = (
        [TensorSpec(*row) for row in rows] for rows in verify.signature_specs(path, "serving_default")
    )  # as converted: litert-torch names the tensors and narrows int64 to int32
    return ExportResult(
        files=[(path, "model")],
        methods=[MethodSpec("serving_default", spec_in, spec_out)],
        quantization=describe(target),
        delegation=report,
        reference=reference,
        quantized_reference=twin,
        program=path,
    )
