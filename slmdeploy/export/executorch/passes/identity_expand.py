"""``expand`` to the shape a tensor already has is removed.

``torch.matmul`` on 4-D tensors decomposes into expand → view → bmm; when nothing is
broadcast the expand is a copy to the same shape. XNNPACK has no expand, so each one cut
the attention into separate delegate subgraphs; its input serves its users unchanged.
"""

from __future__ import annotations

import torch
from executorch.exir.dialects._ops import ops as exir_ops
from torch.fx.passes.infra.pass_base import PassResult

EXPAND = exir_ops.edge.aten.expand_copy.default


def _same_shape(a: torch.fx.Node, b: torch.fx.Node) -> bool:
    va, vb = a.meta.get("val"), b.meta.get("val")
    if va is None or vb is None or va.dim() != vb.dim():
        return False
    return all(str(x) == str(y) for x, y in zip(va.shape, vb.shape))  # symbols compare by name


def drop_identity_expands(graph_module: torch.fx.GraphModule) -> PassResult:
    modified = False
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" or node.target != EXPAND:
            continue
        source = node.args[0]
        if isinstance(source, torch.fx.Node) and _same_shape(source, node):
            node.replace_all_uses_with(source)
            graph_module.graph.erase_node(node)
            modified = True
    if modified:
        graph_module.recompile()
    return PassResult(graph_module, modified)
