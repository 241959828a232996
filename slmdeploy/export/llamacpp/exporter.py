"""llama.cpp (GGUF): a checkpoint through llama.cpp's converter, then its quantizer.

Zoo models are first written as a Hugging Face checkpoint (``save_pretrained``, with a
placeholder vocabulary: ``placeholder_vocab.py``); a checkpoint directory is converted as
it is, with its own tokenizer. ``convert_hf_to_gguf.py`` writes f32 (or f16 for ``fp16``);
the quantized types are made from the f32 file by ``llama_model_quantize``. There is no
graph to lower: libllama builds the compute graph itself at run time and runs every op on
ggml's CPU backend, and it allocates the KV cache when a context is created (f16 by
default, the size the context asks for), so the manifest states the runtime's cache type.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

from slmdeploy.errors import ExportError
from slmdeploy.export.executorch.exporter import ExportResult, Stage, check_seq_len
from slmdeploy.export.executorch.llm_module import StaticCacheLM
from slmdeploy.export.llamacpp import convert, placeholder_vocab, quantize, reference
from slmdeploy.export.manifest import LLM_GGUF_CONVENTION, LLMSpec, MethodSpec, TensorSpec
from slmdeploy.export.source import ModelSource
from slmdeploy.export.target import Target

MODEL_FILE = "model.gguf"
METHOD = "llama_decode"
DELEGATION = {
    "measured_on": "not applicable: libllama builds its graph at run time",
    "backend": "ggml-cpu",
    "note": "llama.cpp runs every op on ggml's CPU backend in this build (no delegate, no fallback)",
    "delegated_fraction": 1.0,
    "fallback_ops": {},
}


def _checkpoint(source: ModelSource, model, into: Path) -> Path:
    """The directory the converter reads: the checkpoint itself, or the zoo model written out."""
    if source.kind == "hf" and source.path is not None:
        return source.path
    model.save_pretrained(into, safe_serialization=True)
    placeholder_vocab.write(into)
    return into


def export_llm(source: ModelSource, target: Target, max_seq_len: int, out_dir: Path, stage: Stage) -> ExportResult:
    from slmdeploy.llamacpp.build import toolchain

    check_seq_len(source, max_seq_len)
    scheme = target.quantization
    with stage("llama.cpp toolchain"):
        tools = toolchain(progress=False)
    with stage("build model"):
        model = source.build()
        reference_lm = StaticCacheLM(copy.deepcopy(model), max_seq_len).eval()
    path = out_dir / MODEL_FILE
    with tempfile.TemporaryDirectory(prefix="slmdeploy-gguf-") as tmp:
        work = Path(tmp)
        with stage("write checkpoint" if source.kind != "hf" else "read checkpoint"):
            checkpoint = _checkpoint(source, model, work / "checkpoint")
        outtype = quantize.FLOAT.get(scheme, "f32")
        with stage(f"convert_hf_to_gguf.py ({outtype})"):
            converted = convert.convert(tools, checkpoint, path if scheme in quantize.FLOAT else work / "f32.gguf", outtype,
                                        source.name)
        if scheme not in quantize.FLOAT:
            with stage(f"quantize ({scheme}, llama_model_quantize)"):
                quantize.quantize(converted, path, scheme)
    twin = None
    if scheme != "fp32":
        with stage("eager twin from the GGUF's weights"):
            twin = StaticCacheLM(reference.twin(model, path, source.config), max_seq_len).eval()
    vocab = int(source.config["vocab_size"])
    io_in = [TensorSpec("tokens", "int32", [1, "seq"]), TensorSpec("positions", "int32", ["seq"])]
    return ExportResult(
        files=[(path, "model")],
        methods=[MethodSpec(METHOD, io_in, [TensorSpec("logits", "float32", [1, vocab])])],
        quantization=quantize.describe(scheme, path, sum(p.numel() for p in model.parameters())),
        llm=LLMSpec(convention=LLM_GGUF_CONVENTION, max_seq_len=max_seq_len, vocab_size=vocab,
                    prefill_method=METHOD, decode_method=METHOD, kv_cache="runtime", cache_dtype="float16"),
        delegation=dict(DELEGATION),
        reference=reference_lm,
        quantized_reference=twin,
        program=path,
    )


def export_module(source: ModelSource, target: Target, out_dir: Path, stage: Stage) -> ExportResult:
    raise ExportError(
        f"{target.name} makes GGUF files, which hold decoder LLMs llama.cpp's converter knows (a zoo model or a "
        "Hugging Face checkpoint); export an nn.Module with an executorch or tflite target."
    )
