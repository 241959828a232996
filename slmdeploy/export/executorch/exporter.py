"""ExecuTorch exporter: eager model -> .pte with the target's delegates and quantization."""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

import torch

from slmdeploy.errors import ExportError
from slmdeploy.export.executorch import lower, quantize
from slmdeploy.export.executorch.kv_cache import PositionedCacheLM, program_cache
from slmdeploy.export.executorch.llm_module import StaticCacheLM
from slmdeploy.export.manifest import LLM_CONVENTION, LLMSpec, MethodSpec, TensorSpec
from slmdeploy.export.source import ModelSource
from slmdeploy.export.target import Target

MODEL_FILE = "model.pte"
Stage = Callable[[str], ContextManager[None]]


@dataclass
class ExportResult:
    """What a runtime exporter hands back to the generic pipeline."""

    files: list[tuple[Path, str]]  # (path, role)
    methods: list[MethodSpec]
    quantization: dict[str, Any]
    llm: LLMSpec | None = None
    delegation: dict[str, Any] = field(default_factory=dict)
    reference: Any = None  # eager float module, for the parity check
    quantized_reference: Any = None  # the same quantized module run eagerly (quantized targets)
    program: Path | None = None
    validation: dict[str, Any] = field(default_factory=dict)  # what a structural check of the file needs


@contextlib.contextmanager
def quiet_library_output() -> Iterator[None]:
    """Swallow what converters print (progress bars, size tables): stdout stays clean for --json."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def io_specs(reference, inputs, in_prefix: str = "input_") -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output specs of a module from one eager call on its example inputs."""
    with torch.no_grad():
        outputs = reference(*inputs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    spec_in = [TensorSpec(f"{in_prefix}{i}", dtype_name(t.dtype), list(t.shape)) for i, t in enumerate(inputs)]
    spec_out = [TensorSpec(f"output_{i}", dtype_name(t.dtype), list(t.shape)) for i, t in enumerate(outputs)]
    return spec_in, spec_out


def check_seq_len(source: ModelSource, max_seq_len: int) -> None:
    limit = source.config.get("max_position_embeddings")
    if limit and max_seq_len > limit:
        raise ExportError(
            f"max_seq_len {max_seq_len} exceeds the model's max_position_embeddings {limit}; "
            f"use --max-seq-len {limit} or less."
        )
    window = source.config.get("sliding_window")
    if window and source.config.get("use_sliding_window", True) and max_seq_len > window:
        raise ExportError(f"max_seq_len {max_seq_len} exceeds the model's sliding window {window}.")


# Decoders the static-KV-cache LLM export does not cover, by model_type, and why (docs/zoo.md).
UNSUPPORTED = {
    "recurrent_gemma": "its RG-LRU recurrent layers keep a recurrent state, not a KV cache, and the LLM export "
                       "holds a static KV cache per layer",
    "minicpm3": "multi-head latent attention caches keys and values of different head sizes (96 and 64), and the "
                "LLM export's static KV cache holds one head size",
}
# On XNNPACK the grouped attention passes a 4-D additive mask, which BLOOM reads as its 2-D padding mask.
UNSUPPORTED_ON_XNNPACK = {
    "bloom": "its ALiBi biases are built from a 2-D padding mask (build_alibi_tensor), while the XNNPACK path "
             "passes the 4-D additive mask of its grouped attention",
}


def check_architecture(source: ModelSource, delegates: tuple[str, ...]) -> None:
    """Refuse, in one line and before any work, a decoder the LLM export cannot take."""
    model_type = source.config.get("model_type")
    reason = UNSUPPORTED.get(model_type) or ("xnnpack" in delegates and UNSUPPORTED_ON_XNNPACK.get(model_type))
    if reason:
        raise ExportError(
            f"{source.name} ({source.facts().get('architecture')}) cannot be exported as an LLM: {reason}. "
            "See docs/zoo.md for the families each target takes."
        )


def _lower_and_save(exported, target: Target, out_dir: Path, stage: Stage) -> tuple[Path, dict[str, Any]]:
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    from slmdeploy.export.executorch import passes

    with stage("lower to edge + delegate"), quiet_library_output():
        edge = to_edge_transform_and_lower(
            exported,
            transform_passes=passes.DELEGABLE_SHAPES if "xnnpack" in target.delegates else None,
            partitioner=lower.partitioners(target.delegates, target.options, target.quantization),
            compile_config=EdgeCompileConfig(_check_ir_validity=False),
        )
        report = lower.delegation_report(edge.exported_program().graph_module, target.delegates)
    with stage("emit .pte"):
        program = edge.to_executorch()
        path = out_dir / MODEL_FILE
        with open(path, "wb") as fh:
            program.write_to_file(fh)
    return path, report


def llm_wrapper(model, delegates: tuple[str, ...], max_seq_len: int) -> torch.nn.Module:
    """The LLM module whose KV-cache writes these delegates can lower (see kv_cache.py)."""
    if set(delegates) <= {"xnnpack", "portable"}:
        return StaticCacheLM(model, max_seq_len, delegable="xnnpack" in delegates).eval()
    return PositionedCacheLM(model, max_seq_len, write="slice" if "coreml" in delegates else "index").eval()


def export_llm(source: ModelSource, target: Target, max_seq_len: int, out_dir: Path, stage: Stage) -> ExportResult:
    check_seq_len(source, max_seq_len)
    check_architecture(source, target.delegates)
    with stage("build model"):
        model = source.build()
        reference = StaticCacheLM(copy.deepcopy(model), max_seq_len).eval()
    with stage(f"quantize ({target.quantization})"):
        quant = quantize.describe(target.quantization, target.options, target.delegates)
        model = quantize.apply(model, target.quantization, target.options, target.delegates)
        wrapped = llm_wrapper(model, target.delegates, max_seq_len)
    with stage("torch.export"), torch.no_grad():
        try:
            exported = torch.export.export(
                wrapped, wrapped.example_inputs(), dynamic_shapes=wrapped.dynamic_shapes(), strict=True
            )
        except Exception as err:  # torch.export failures are long; keep the first line
            raise ExportError(
                f"torch.export failed for {source.name} ({source.facts().get('architecture')}): "
                f"{str(err).strip().splitlines()[0]}"
            ) from err
    cache = program_cache(exported)
    path, report = _lower_and_save(exported, target, out_dir, stage)
    vocab = int(source.config["vocab_size"])
    io_in = [TensorSpec("tokens", "int64", [1, "seq"]), TensorSpec("input_pos", "int64", ["seq"])]
    io_out = [TensorSpec("logits", "float32", [1, vocab])]
    return ExportResult(
        files=[(path, "model")],
        methods=[MethodSpec("forward", io_in, io_out)],
        quantization=quant,
        llm=LLMSpec(
            convention=LLM_CONVENTION,
            max_seq_len=max_seq_len,
            vocab_size=vocab,
            prefill_method="forward",
            decode_method="forward",
            **(dict(cache_tensors=cache[0], cache_shape=cache[1], cache_dtype=cache[2]) if cache else {}),
        ),
        delegation=report,
        reference=reference,
        quantized_reference=wrapped if target.quantization not in quantize.FLOAT_SCHEMES else None,
        program=path,
    )


def export_module(source: ModelSource, target: Target, out_dir: Path, stage: Stage) -> ExportResult:
    """Any nn.Module with example inputs: one static-shape ``forward`` method."""
    with stage("build model"):
        model = source.build()
        reference = copy.deepcopy(model).eval()
    with stage(f"quantize ({target.quantization})"):
        quant = quantize.describe(target.quantization, target.options, target.delegates)
        model = quantize.apply(model, target.quantization, target.options, target.delegates)
    inputs = source.example_inputs or ()
    with stage("torch.export"), torch.no_grad():
        exported = torch.export.export(model, inputs, strict=False)
    path, report = _lower_and_save(exported, target, out_dir, stage)
    spec_in, spec_out = io_specs(reference, inputs)
    return ExportResult(
        files=[(path, "model")],
        methods=[MethodSpec("forward", spec_in, spec_out)],
        quantization=quant,
        delegation=report,
        reference=reference,
        quantized_reference=model if target.quantization not in quantize.FLOAT_SCHEMES else None,
        program=path,
    )
