"""Lower an ExportedProgram to ExecuTorch with the target's delegates, and report delegation.

What lowers on this (Linux) host, checked with executorch 1.5.1:

* XNNPACK, Core ML (via coremltools, no Mac needed to *lower*), Vulkan: lower here.
* QNN: lowers only with the Qualcomm AI Engine Direct (QNN) SDK installed and
  ``QNN_SDK_ROOT`` pointing at it (its x86_64 libraries compile the HTP graph).
* MPS: the delegate was removed from ExecuTorch in 1.5 (pytorch/executorch#22181);
  with an older ExecuTorch that still ships ``executorch.backends.apple.mps`` it is used.

``preflight`` checks all of that before any work starts and says what to install.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from slmdeploy.errors import ExportError

# Nodes that are not kernels: tuple unpacking of delegate outputs, symbolic-shape arithmetic
# and runtime shape asserts. They are listed apart from real portable-kernel fallbacks.
BOOKKEEPING = {"getitem", "sym_size", "_assert_scalar", "_local_scalar_dense", "add", "sub", "mul", "ge", "le", "lt", "gt", "eq"}

COREML_UNITS = {"all": "ALL", "cpu_and_ne": "CPU_AND_NE", "cpu_and_gpu": "CPU_AND_GPU", "cpu_only": "CPU_ONLY"}


def _missing_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


def qnn_sdk_problem() -> str | None:
    """Why the QNN delegate cannot compile here, or None when the SDK is usable."""
    root = os.environ.get("QNN_SDK_ROOT")
    how = (
        "Install the Qualcomm AI Engine Direct SDK (QNN, 2.37 or newer, from "
        "https://www.qualcomm.com/developer/software/qualcomm-ai-engine-direct-sdk), then "
        "`export QNN_SDK_ROOT=/path/to/qairt/<version>` and "
        "`export LD_LIBRARY_PATH=$QNN_SDK_ROOT/lib/x86_64-linux-clang:$LD_LIBRARY_PATH`."
    )
    if not root:
        return f"the QNN delegate needs the Qualcomm QNN SDK and QNN_SDK_ROOT is not set. {how}"
    lib = Path(root) / "lib" / "x86_64-linux-clang" / "libQnnHtp.so"
    if not lib.is_file():
        return f"QNN_SDK_ROOT={root} does not hold a QNN SDK (no {lib.relative_to(root)}). {how}"
    return None


def preflight(delegates: tuple[str, ...]) -> None:
    """Fail before any work if a delegate's toolchain is missing; say what to install."""
    for delegate in delegates:
        if delegate == "coreml" and _missing_module("coremltools"):
            raise ExportError(
                "the ExecuTorch Core ML delegate needs coremltools: `pip install coremltools==9.0` "
                "(or `pip install 'slmdeploy[coreml]'`)."
            )
        if delegate == "mps" and _missing_module("executorch.backends.apple.mps"):
            raise ExportError(
                "the ExecuTorch MPS delegate is not in the installed executorch: it was deprecated in 1.2 and "
                "removed in 1.5 (pytorch/executorch#22181). On a Mac, install executorch<1.5 built with "
                "EXECUTORCH_BUILD_MPS=ON to lower for MPS, or use the Core ML targets (ios-executorch-coreml, "
                "ios-coreml-ane-fp16) for the Apple GPU/Neural Engine."
            )
        if delegate == "qnn":
            problem = qnn_sdk_problem()
            if problem:
                raise ExportError(problem)
        if delegate == "vulkan" and _missing_module("executorch.backends.vulkan.partitioner.vulkan_partitioner"):
            raise ExportError("the installed executorch has no Vulkan partitioner; reinstall `executorch==1.5.1`.")


def _coreml(options: dict[str, Any], quantization: str):
    import logging

    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    for name in ("coremltools", "executorch.backends.apple.coreml.compiler.coreml_preprocess"):
        logging.getLogger(name).setLevel(logging.ERROR)  # per-partition notes, not problems
    target_os = options.get("minimum_deployment_target", "iOS18")
    specs = CoreMLBackend.generate_compile_specs(
        compute_unit=getattr(ct.ComputeUnit, COREML_UNITS[options.get("compute_units", "cpu_and_ne")]),
        minimum_deployment_target=getattr(ct.target, target_os),
        compute_precision=ct.precision.FLOAT16 if quantization == "fp16" else ct.precision.FLOAT32,
        model_type=CoreMLBackend.MODEL_TYPE.MODEL,  # an .mlpackage inside the .pte; compiled on the device
    )
    # The KV cache becomes Core ML state only from iOS 18 / macOS 15 on.
    stateful = target_os in ("iOS18", "macOS15")
    return CoreMLPartitioner(compile_specs=specs, take_over_mutable_buffer=stateful)


def _vulkan(quantization: str):
    import functools

    from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner
    from executorch.backends.vulkan.patterns import pattern_registry

    # executorch 1.5.1 registers its pattern-graph builders (HF RoPE, ...) *before* their
    # lru_cache wraps them, so every delegate partition re-traces the patterns with
    # torch.export (~2.5 s each, most of the Vulkan lowering time). Cache them as intended.
    for entry in pattern_registry.fusable_patterns.values():
        if entry.get_graphs_fn is not None and not hasattr(entry.get_graphs_fn, "cache_info"):
            entry.get_graphs_fn = functools.lru_cache(maxsize=2)(entry.get_graphs_fn)
    return VulkanPartitioner({"force_fp16": quantization == "fp16"})


def _qnn(options: dict[str, Any]):
    from executorch.backends.qualcomm.partition.qnn_partitioner import QnnPartitioner
    from executorch.backends.qualcomm.serialization.qc_schema import QcomChipset
    from executorch.backends.qualcomm.utils.utils import (
        generate_htp_compiler_spec,
        generate_qnn_executorch_compiler_spec,
    )

    specs = generate_qnn_executorch_compiler_spec(
        soc_model=getattr(QcomChipset, options.get("soc", "SM8650")),
        backend_options=generate_htp_compiler_spec(use_fp16=True),
    )
    return QnnPartitioner(specs)


def partitioners(delegates: tuple[str, ...], options: dict[str, Any], quantization: str = "fp32") -> list[Any]:
    """One partitioner per delegate, in priority order; ``portable`` means none."""
    preflight(delegates)
    parts: list[Any] = []
    for delegate in delegates:
        if delegate == "portable":
            continue
        if delegate == "xnnpack":
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

            parts.append(XnnpackPartitioner())
        elif delegate == "coreml":
            parts.append(_coreml(options, quantization))
        elif delegate == "vulkan":
            parts.append(_vulkan(quantization))
        elif delegate == "qnn":
            parts.append(_qnn(options))
        elif delegate == "mps":  # executorch < 1.5 only (preflight says so); its documented compile spec
            from executorch.backends.apple.mps.partition import MPSPartitioner
            from executorch.exir.backend.compile_spec_schema import CompileSpec

            parts.append(MPSPartitioner([CompileSpec("use_fp16", bytes([quantization == "fp16"]))]))
        else:
            raise ExportError(f"the ExecuTorch delegate {delegate!r} is not known to slmdeploy's exporter.")
    return parts


def _per_backend(graph_module) -> dict[str, dict[str, int]]:
    """Delegate subgraphs and the ops inside them, per backend id."""
    counts: dict[str, dict[str, int]] = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or getattr(node.target, "__name__", "") != "executorch_call_delegate":
            continue
        lowered = getattr(graph_module, node.args[0].target)
        entry = counts.setdefault(lowered.backend_id, {"subgraphs": 0, "nodes": 0})
        entry["subgraphs"] += 1
        entry["nodes"] += sum(1 for n in lowered.original_module.graph.nodes if n.op == "call_function")
    return counts


def delegation_report(graph_module, delegates: tuple[str, ...] = ()) -> dict[str, Any]:
    """How much of the graph each delegate took, and which ops fell back to portable kernels.

    ``fallback_ops`` counts the kernel ops left outside every delegate (they run on
    ExecuTorch's portable CPU kernels); ``bookkeeping_ops`` are the non-kernel nodes
    (delegate output unpacking, symbolic shapes). A portable-only target has no
    delegate to fall back from: its ops are listed as ``portable_ops``.
    """
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    outside = {op: b.non_delegated for op, b in sorted(info.delegation_by_operator.items()) if b.non_delegated}
    kernels = {op: n for op, n in outside.items() if op not in BOOKKEEPING}
    bookkeeping = {op: n for op, n in outside.items() if op in BOOKKEEPING}
    total = info.num_delegated_nodes + sum(kernels.values())
    report = {
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "delegated_nodes": info.num_delegated_nodes,
        "non_delegated_nodes": sum(kernels.values()),
        "delegated_fraction": round(info.num_delegated_nodes / total, 4) if total else 0.0,
        "by_delegate": _per_backend(graph_module),
        "fallback_ops": kernels,
        "bookkeeping_ops": bookkeeping,
    }
    if all(d == "portable" for d in delegates):
        report["portable_ops"], report["fallback_ops"] = kernels, {}
    return report
