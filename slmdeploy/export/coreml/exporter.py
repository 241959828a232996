"""Standalone Core ML: eager model -> ML program (.mlpackage) with a KV cache.

The LLM is exported with ``torch.export`` and converted by coremltools. How the KV cache
crosses the interface depends on the deployment target:

* iOS 18 / macOS 15 (``slmdeploy.llm/1``): one package, function ``main`` with a dynamic
  sequence length; the cache buffers become Core ML *states*, written with ``slice_update``.
* iOS 16-17 / macOS 13-14 (``slmdeploy.llm-kvio/1``, as TFLite): no states, no
  ``slice_update``, no multifunction packages, and coremltools allows only one input with
  enumerated shapes there. The cache is model I/O (``k_cache_i``/``v_cache_i`` in,
  ``k_cache_i_out``/``v_cache_i_out`` out: Core ML refuses an output named like an input),
  written out of place with a one-hot matmul and a select (``write_onehot``), and prefill
  (fixed length ``P``) and decode (one token) are two fixed-shape packages,
  ``prefill.mlpackage`` and ``decode.mlpackage``: fixed shapes keep both on the Neural
  Engine, at the price of a second copy of the weights (docs/targets.md says why).

Weight quantization runs on the converted program with ``coremltools.optimize.coreml``
(int8 per-channel; int4 per-block from iOS 18). An ``.mlpackage`` is a directory; the
artifact keeps its package(s) in one uncompressed zip (``model.mlpackage.zip``) so that
hashing, caching and pushing stay one-file-per-entry.

Core ML predicts only on macOS/iOS: here the package is loaded back without compiling
(``skip_model_load``) and its spec is checked (``spec_check.py``). What the target means
(deployment target, compute units, quantization) is ``recipe.py``; the I/O cache is
``io_cache.py``.
"""

from __future__ import annotations

import copy
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from slmdeploy.errors import ExportError
from slmdeploy.export.executorch.exporter import ExportResult, Stage, check_seq_len, io_specs, quiet_library_output
from slmdeploy.export.executorch.kv_cache import PositionedCacheLM
from slmdeploy.export.manifest import LLM_CONVENTION, LLM_KV_IO_CONVENTION, LLMSpec, MethodSpec, TensorSpec
from slmdeploy.export.source import ModelSource
from slmdeploy.export.coreml.io_cache import cache_output_name, io_cache_model
from slmdeploy.export.coreml.recipe import compute_units, deployment_target, describe, prefill_len, stateful, whole_program
from slmdeploy.export.coreml.spec_check import PACKAGE, check_package, check_packages
from slmdeploy.export.target import Target

MODEL_FILE = "model.mlpackage.zip"
FUNCTION = "main"
STATELESS_METHODS = ("prefill", "decode")
SPEC_STAGE = "check the package spec"


def for_coremltools(exported):
    """Rewrite the few ATen ops coremltools 9's torch.export frontend has no lowering for
    (``new_ones``/``new_zeros``/``new_full``: decomposed; ``alias``: dropped, it is a no-op
    view) and keep every other op as it is."""
    from torch._decomp import get_decompositions

    aten = torch.ops.aten
    exported = exported.run_decompositions(get_decompositions([aten.new_ones, aten.new_zeros, aten.new_full]))
    graph = exported.graph_module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in (aten.alias.default, aten.alias_copy.default):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    exported.graph_module.recompile()
    return exported


def tensor_types(specs: list[TensorSpec], with_shape: bool = True) -> list:
    """coremltools tensor types pinned to the manifest's dtypes: with fp16 compute precision
    coremltools would otherwise make float I/O fp16, and the manifest says what callers feed."""
    import coremltools as ct
    import numpy as np

    return [ct.TensorType(name=s.name, dtype=np.dtype(s.dtype).type, **({"shape": tuple(s.shape)} if with_shape else {}))
            for s in specs]


def llm_inputs(max_seq_len: int) -> list:
    """``tokens[1, seq]`` and ``input_pos[seq]`` (int32), ``seq`` in ``1..max_seq_len-1``."""
    import coremltools as ct
    import numpy as np

    seq = ct.RangeDim(1, max_seq_len - 1, default=1)
    return [ct.TensorType(name="tokens", shape=(1, seq), dtype=np.int32),
            ct.TensorType(name="input_pos", shape=(seq,), dtype=np.int32)]


def _convert(exported, inputs, outputs, target: Target):
    import logging

    import coremltools as ct

    logging.getLogger("coremltools").setLevel(logging.ERROR)  # shape-broadcast notes, not problems

    precision = ct.precision.FLOAT32 if target.quantization == "fp32" else ct.precision.FLOAT16
    try:
        with quiet_library_output():
            return ct.convert(
                exported,
                inputs=inputs,
                outputs=outputs,
                minimum_deployment_target=getattr(ct.target, deployment_target(target)),
                compute_units=getattr(ct.ComputeUnit, compute_units(target)),
                compute_precision=precision,
                skip_model_load=True,
            )
    except Exception as err:  # coremltools' messages are long; keep the first line
        raise ExportError(f"coremltools could not convert the model: {str(err).strip().splitlines()[0]}") from err


def _quantize(mlmodel, target: Target):
    if target.quantization not in ("8w", "4w"):
        return mlmodel
    import coremltools.optimize.coreml as cto

    if target.quantization == "8w":
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    else:
        group = int(target.options.get("group_size", 32))
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=group)
    with quiet_library_output():
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=config))


def _save_zipped(mlmodels: dict[str, Any], out_dir: Path) -> Path:
    """Each model as ``<name>.mlpackage/`` in one uncompressed zip."""
    path = out_dir / MODEL_FILE
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, mlmodel in mlmodels.items():
            package = out_dir / f"{name}.mlpackage"
            mlmodel.save(str(package))
            for file in sorted(p for p in package.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(str(Path(package.name) / file.relative_to(package)), date_time=(1980, 1, 1, 0, 0, 0))
                zf.writestr(info, file.read_bytes())
            shutil.rmtree(package)
    return path


def _core_ml_io(spec: TensorSpec) -> TensorSpec:
    """Core ML has no int64 I/O: integer tensors cross the interface as int32."""
    return TensorSpec(spec.name, "int32", spec.shape) if spec.dtype == "int64" else spec


def _build_package(exported, inputs: list, expect: dict[str, Any], target: Target, out_dir: Path,
                   stage: Stage) -> tuple[Path, dict[str, Any]]:
    """Convert, quantize, save, and check the saved package against ``expect`` (a failed check raises)."""
    return _build_packages({PACKAGE: (exported, inputs, expect)}, target, out_dir, stage)


def _build_packages(programs: dict[str, tuple[Any, list, dict[str, Any]]], target: Target, out_dir: Path,
                    stage: Stage) -> tuple[Path, dict[str, Any]]:
    """``_build_package`` for one package per name (``{name: (exported, inputs, expect)}``), one zip."""
    mlmodels = {}
    for name, (exported, inputs, expect) in programs.items():
        what = f" ({name})" if len(programs) > 1 else ""
        with stage(f"convert to Core ML (ML program){what}"):
            mlmodel = _convert(exported, inputs, tensor_types(expect["outputs"], with_shape=False), target)
        with stage(f"quantize weights ({target.quantization}){what}"):
            mlmodels[name] = _quantize(mlmodel, target)
    with stage("save .mlpackage"):
        path = _save_zipped(mlmodels, out_dir)
    with stage(SPEC_STAGE):
        if len(programs) == 1:
            ((name, (_, _, expect)),) = programs.items()
            return path, check_package(path, target, expect, package=name)
        return path, check_packages(path, target, {name: expect for name, (_, _, expect) in programs.items()})


def export_llm(source: ModelSource, target: Target, max_seq_len: int, out_dir: Path, stage: Stage) -> ExportResult:
    check_seq_len(source, max_seq_len)
    if not stateful(target):
        return _export_llm_kv_io(source, target, max_seq_len, out_dir, stage)
    with stage("build model"):  # no eager reference copy: Core ML cannot run here, nothing is compared
        model = source.build()
        wrapped = PositionedCacheLM(model, max_seq_len, write="slice").eval()
    with stage("torch.export"), torch.no_grad():
        exported = for_coremltools(torch.export.export(
            wrapped, wrapped.example_inputs(), dynamic_shapes=wrapped.dynamic_shapes(), strict=True
        ))
    vocab = int(source.config["vocab_size"])
    states = [TensorSpec(name, "float16" if target.quantization != "fp32" else "float32", list(wrapped.cache_shape()))
              for i in range(wrapped.num_layers) for name in (f"key_cache_{i}", f"value_cache_{i}")]
    io_in = [TensorSpec("tokens", "int32", [1, "seq"]), TensorSpec("input_pos", "int32", ["seq"])]
    io_out = [TensorSpec("logits", "float32", [1, vocab])]
    dims = {"seq": [1, max_seq_len - 1]}
    expect = {"inputs": io_in, "outputs": io_out, "states": states, "dims": dims}
    path, spec_check = _build_package(exported, llm_inputs(max_seq_len), expect, target, out_dir, stage)
    return ExportResult(
        files=[(path, "model")],
        methods=[MethodSpec(FUNCTION, io_in, io_out)],
        quantization=describe(target),
        llm=LLMSpec(convention=LLM_CONVENTION, max_seq_len=max_seq_len, vocab_size=vocab,
                    prefill_method=FUNCTION, decode_method=FUNCTION, kv_cache="state",
                    cache_tensors=[s.name for s in states], cache_dtype=states[0].dtype,
                    cache_shape=list(wrapped.cache_shape())),
        delegation=whole_program(target),
        reference=model,  # counted for the manifest's parameter count
        validation={"expect": expect, "spec_check": spec_check},
    )


def _export_llm_kv_io(source: ModelSource, target: Target, max_seq_len: int, out_dir: Path, stage: Stage) -> ExportResult:
    """Before iOS 18: ``slmdeploy.llm-kvio/1`` as two fixed-shape packages (prefill ``P`` tokens, decode 1)."""
    length = prefill_len(target, max_seq_len)
    with stage("build model"):
        model = source.build()
        wrapped = io_cache_model(model, max_seq_len)
    seqs = {"prefill": length, "decode": 1}
    exported = {}
    with stage("torch.export (prefill + decode)"), torch.no_grad():
        for name, seq in seqs.items():
            exported[name] = for_coremltools(torch.export.export(wrapped, (), kwargs=wrapped.example_kwargs(seq), strict=True))
    vocab = int(source.config["vocab_size"])
    dtype = "float16" if target.quantization != "fp32" else "float32"  # the ANE computes in fp16: no casts
    shape = list(wrapped.cache_shape())
    names = wrapped.cache_names()
    cache_in = [TensorSpec(n, dtype, shape) for n in names]
    cache_out = [TensorSpec(cache_output_name(n), dtype, shape) for n in names]
    methods, programs = [], {}
    for name, seq in seqs.items():
        io_in = [TensorSpec("tokens", "int32", [1, seq]), TensorSpec("input_pos", "int32", [seq]), *cache_in]
        io_out = [TensorSpec("logits", "float32", [1, vocab]), *cache_out]
        methods.append(MethodSpec(name, io_in, io_out))
        expect = {"inputs": io_in, "outputs": io_out, "states": [], "dims": {}}
        programs[name] = (exported[name], tensor_types(io_in), expect)
    path, spec_check = _build_packages(programs, target, out_dir, stage)
    return ExportResult(
        files=[(path, "model")],
        methods=methods,
        quantization=describe(target),
        llm=LLMSpec(convention=LLM_KV_IO_CONVENTION, max_seq_len=max_seq_len, vocab_size=vocab,
                    prefill_method="prefill", decode_method="decode", dynamic_prefill=False,
                    prefill_seq_len=length, kv_cache="io", cache_tensors=names, cache_dtype=dtype,
                    cache_shape=shape, cache_outputs=[t.name for t in cache_out]),
        delegation=whole_program(target),
        reference=model,  # counted for the manifest's parameter count
        validation={"expect": {name: p[2] for name, p in programs.items()}, "spec_check": spec_check},
    )


def export_module(source: ModelSource, target: Target, out_dir: Path, stage: Stage) -> ExportResult:
    """Any nn.Module with example inputs: one ``main`` function with the example shapes."""
    with stage("build model"):
        model = source.build()
        reference = copy.deepcopy(model).eval()
    example = source.example_inputs or ()
    with stage("torch.export"), torch.no_grad():
        exported = for_coremltools(torch.export.export(model, example, strict=False))
    spec_in, spec_out = ([_core_ml_io(t) for t in specs] for specs in io_specs(reference, example))
    expect = {"inputs": spec_in, "outputs": spec_out, "states": [], "dims": {}}
    path, spec_check = _build_package(exported, tensor_types(spec_in), expect, target, out_dir, stage)
    return ExportResult(
        files=[(path, "model")],
        methods=[MethodSpec(FUNCTION, spec_in, spec_out)],
        quantization=describe(target),
        delegation=whole_program(target),
        reference=reference,
        validation={"expect": expect, "spec_check": spec_check},
    )


