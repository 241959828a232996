"""RMSNorm as a 4-D global mean, which XNNPACK lowers (its mean only takes 4-D inputs).

Hugging Face RMSNorms average over the last dim of a 3-D (or, for Qwen3's q/k norms, 4-D)
tensor; that mean falls back to portable kernels and splits every layer into several
delegate subgraphs. Viewing the input as ``[1, rows, dim, 1]`` makes it a mean over the two
innermost dims: the same number, delegated.
"""

from __future__ import annotations

import torch


class DelegableRMSNorm(torch.nn.Module):
    def __init__(self, weight: torch.Tensor, eps: float, weight_offset: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight.detach().clone(), requires_grad=False)
        self.eps = eps
        self.weight_offset = weight_offset  # Gemma scales by (1 + weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        dtype = x.dtype
        h = x.to(torch.float32).reshape(1, -1, shape[-1], 1)
        h = h * torch.rsqrt(h.pow(2).mean(dim=(-1, -2), keepdim=True) + self.eps)
        h = h.reshape(shape)
        scale = self.weight.to(torch.float32) + self.weight_offset if self.weight_offset else self.weight.to(torch.float32)
        return (h * scale).to(dtype)


def _eps(module: torch.nn.Module) -> float | None:
    for name in ("variance_epsilon", "eps", "epsilon"):
        value = getattr(module, name, None)
        if isinstance(value, float):
            return value
    return None


def replace_rms_norms(model: torch.nn.Module) -> int:
    """Swap every Hugging Face ``*RMSNorm`` with a weight for ``DelegableRMSNorm``; returns how many."""
    replaced = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            cls = type(child).__name__
            eps = _eps(child)
            if not cls.endswith("RMSNorm") or eps is None or not isinstance(getattr(child, "weight", None), torch.Tensor):
                continue
            offset = 1.0 if cls.startswith("Gemma") and not cls.startswith("Gemma3n") else 0.0
            setattr(parent, child_name, DelegableRMSNorm(child.weight, eps, offset))
            replaced += 1
    return replaced
