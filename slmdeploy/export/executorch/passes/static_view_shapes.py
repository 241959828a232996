"""Views whose target shape names a symbol get ``-1`` in its place.

With a dynamic sequence length, ``x.view(1, seq, 8, 32)`` is exported with ``seq`` as a
``sym_size`` node, and XNNPACK's partitioner takes only integer shapes with at most one
inferred (``-1``) dim. A view whose *output* has a single symbolic dim is fully described
by the integers of the others and ``-1`` for that one (the element count fixes it), so
the rewrite is exact and the view is delegated instead of splitting the subgraph.
"""

from __future__ import annotations

import torch
from executorch.exir.dialects._ops import ops as exir_ops
from torch.fx.passes.infra.pass_base import PassResult

VIEW = exir_ops.edge.aten.view_copy.default


def _integer_shape(node: torch.fx.Node) -> list[int] | None:
    """The view's shape with ints and one ``-1``, or None when that cannot describe it."""
    val = node.meta.get("val")
    if val is None:
        return None
    shape, symbolic = [], 0
    for dim in val.shape:
        if isinstance(dim, int):
            shape.append(dim)
        else:
            symbolic += 1
            shape.append(-1)
    return shape if symbolic == 1 else None


def static_view_shapes(graph_module: torch.fx.GraphModule) -> PassResult:
    modified = False
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.target != VIEW:
            continue
        if all(isinstance(d, int) for d in node.args[1]):
            continue
        shape = _integer_shape(node)
        if shape is None:
            continue
        node.args = (node.args[0], shape, *node.args[2:])
        modified = True
    if modified:
        for node in reversed(graph_module.graph.nodes):  # sym_size nodes the views no longer read
            if node.op == "call_function" and not node.users and node.target == torch.ops.aten.sym_size.int:
                graph_module.graph.erase_node(node)
        graph_module.recompile()
    return PassResult(graph_module, modified)
