"""Lower an ExportedProgram to ExecuTorch with the target's delegates, and report delegation."""

from __future__ import annotations

from typing import Any

from slmdeploy.errors import ExportError


def partitioners(delegates: tuple[str, ...], options: dict[str, Any]) -> list[Any]:
    """One partitioner per delegate, in priority order; ``portable`` means none."""
    parts: list[Any] = []
    for delegate in delegates:
        if delegate == "portable":
            continue
        if delegate == "xnnpack":
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

            parts.append(XnnpackPartitioner())
        else:
            raise ExportError(
                f"the ExecuTorch delegate {delegate!r} is not available in this build of slmdeploy's exporter."
            )
    return parts


def delegation_report(graph_module) -> dict[str, Any]:
    """How much of the graph each delegate took, and which ops fell back to portable kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    fallback = {
        op: b.non_delegated for op, b in sorted(info.delegation_by_operator.items()) if b.non_delegated
    }
    total = info.num_delegated_nodes + info.num_non_delegated_nodes
    return {
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "delegated_nodes": info.num_delegated_nodes,
        "non_delegated_nodes": info.num_non_delegated_nodes,
        "delegated_fraction": round(info.num_delegated_nodes / total, 4) if total else 0.0,
        "fallback_ops": fallback,
    }
