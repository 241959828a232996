"""Eager PyTorch twin of the ai-edge-quantizer schemes, for the quantized parity check.

A quantized artifact is judged against the *same* quantization run eagerly, so that what
the check measures is the export (conversion, kernels), not the quantization's own loss.
ai-edge-quantizer's min-max symmetric weights (``scale = max|w| / qmax`` per output
channel, or per block of ``group`` inputs, rounded to nearest and clipped to
``[-qmax, qmax]``) are reproduced exactly on every ``nn.Linear`` (the FULLY_CONNECTED ops);
for the dynamic schemes the activations are quantized per row to asymmetric int8, as
XNNPACK's dynamically-quantized fully-connected kernels do at run time.
"""

from __future__ import annotations

import torch


def fake_quant_weight(weight: torch.Tensor, bits: int, group: int = 0) -> torch.Tensor:
    qmax = 2 ** (bits - 1) - 1
    out_features, in_features = weight.shape
    blocks = weight.reshape(out_features, in_features // group, group) if group else weight.reshape(out_features, 1, -1)
    scale = blocks.abs().amax(dim=-1, keepdim=True).clamp(min=1e-9) / qmax
    q = torch.clamp(torch.round(blocks / scale), -qmax, qmax)
    return (q * scale).reshape(out_features, in_features)


def fake_quant_rows(x: torch.Tensor) -> torch.Tensor:
    """Per-row asymmetric int8 (the range always includes 0)."""
    lo = x.amin(dim=-1, keepdim=True).clamp(max=0)
    hi = x.amax(dim=-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-12)
    zero = torch.round(-128 - lo / scale)
    q = torch.clamp(torch.round(x / scale) + zero, -128, 127)
    return (q - zero) * scale


class FakeQuantLinear(torch.nn.Module):
    def __init__(self, linear: torch.nn.Linear, bits: int, group: int, dynamic: bool) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(fake_quant_weight(linear.weight.detach(), bits, group), requires_grad=False)
        self.bias = linear.bias
        self.dynamic = dynamic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            x = fake_quant_rows(x)
        return torch.nn.functional.linear(x, self.weight, self.bias)


def apply(module: torch.nn.Module, scheme: str, group: int = 32) -> torch.nn.Module:
    """Replace every ``nn.Linear`` of ``module`` (in place) by its ai-edge-quantizer twin."""
    bits = 4 if scheme == "8da4w" else 8
    block = group if scheme == "8da4w" else 0
    dynamic = scheme.startswith("8da")
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, torch.nn.Linear) and (not block or sub.in_features % block == 0):
                setattr(child, attr, FakeQuantLinear(sub, bits, block, dynamic))
    return module
