"""GPT-2's ``Conv1D`` projections as ``nn.Linear``, so that weight quantization reaches them.

The GPT-2 family in transformers (GPT-2, Cerebras-GPT, LaMini-GPT, ...) keeps its attention and
MLP projections in ``Conv1D``: ``x @ W + b`` with ``W`` stored ``[in, out]``. torchao's quantizers
take ``nn.Linear`` only, so an 8da4w export left every projection in fp32 (measured: GPT-2's
program 622 -> 495 MiB, 1.26x, where 4-bit weights should give ~3x). A Linear holding ``W.T``
computes the same numbers.
"""

from __future__ import annotations

import torch


def replace_conv1d(model: torch.nn.Module) -> int:
    """Swap every transformers ``Conv1D`` for the equivalent ``nn.Linear``; returns how many."""
    from transformers.pytorch_utils import Conv1D

    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if isinstance(child, Conv1D)]
    for parent, name, conv in swaps:
        linear = torch.nn.Linear(conv.nx, conv.nf, bias=True, dtype=conv.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.t())
            linear.bias.copy_(conv.bias)
        linear.requires_grad_(False)
        setattr(parent, name, linear)
    return len(swaps)
