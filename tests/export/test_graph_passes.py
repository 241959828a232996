"""The edge graph passes keep the program's numbers and let XNNPACK take what they rewrite."""

from __future__ import annotations

import pytest
import torch

from slmdeploy.export.executorch import passes


class HeadSplit(torch.nn.Module):
    """What attention over a static cache does with a dynamic sequence: project, split heads
    (a symbolic view), 4-D matmuls that broadcast nothing (identity expands), merge heads."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(32, 32)
        self.register_buffer("keys", torch.randn(1, 4, 16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.shape[1]
        h = self.proj(x).view(1, seq, 4, 8).transpose(1, 2)  # [1, 4, seq, 8]
        scores = torch.matmul(h, self.keys.transpose(2, 3)).softmax(-1)  # [1, 4, seq, 16]
        return torch.matmul(scores, self.keys).transpose(1, 2).reshape(1, seq, 32)


def _lower(with_passes: bool):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

    seq = torch.export.Dim("seq", min=1, max=16)
    torch.manual_seed(0)
    module = HeadSplit().eval()
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.2)
    exported = torch.export.export(module, (torch.randn(1, 4, 32),), dynamic_shapes=({1: seq},))
    edge = to_edge_transform_and_lower(exported, transform_passes=passes.DELEGABLE_SHAPES if with_passes else None,
                                       partitioner=[XnnpackPartitioner()],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False))
    return module, edge


def _report(edge) -> dict:
    from slmdeploy.export.executorch.lower import delegation_report

    return delegation_report(edge.exported_program().graph_module, ("xnnpack",))


@pytest.fixture(scope="module")
def lowered():
    return {flag: _lower(flag) for flag in (False, True)}


def test_without_the_passes_the_symbolic_views_and_expands_stay_outside(lowered):
    outside = _report(lowered[False][1])["fallback_ops"]
    assert "aten_view_copy_default" in outside and "aten_expand_copy_default" in outside


def test_with_the_passes_the_whole_graph_is_one_xnnpack_subgraph(lowered):
    report = _report(lowered[True][1])
    assert report["fallback_ops"] == {} and report["delegated_subgraphs"] == 1 and report["delegated_fraction"] == 1.0


@pytest.mark.parametrize("seq", [1, 5, 16])
def test_the_rewritten_program_computes_what_eager_does_at_every_length(lowered, seq):
    from executorch.runtime import Runtime

    module, edge = lowered[True]
    program = Runtime.get().load_program(edge.to_executorch().buffer)
    x = torch.randn(1, seq, 32)
    (got,) = program.load_method("forward").execute([x])
    torch.testing.assert_close(got, module(x), rtol=1e-4, atol=1e-4)
