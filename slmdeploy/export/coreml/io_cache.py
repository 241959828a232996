"""The KV cache as model I/O, for deployment targets without Core ML state (before iOS 18).

Written out of place from ops every opset has (``slice_update`` is iOS 18).
"""

from __future__ import annotations

import torch

from slmdeploy.export.executorch.kv_cache import PositionedCacheLM


def write_onehot(cache: torch.Tensor, new: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Out of place: ``cache`` with ``new[:, :, i]`` at slot ``pos[i]``, from ops every Core ML opset
    has (``slice_update`` is iOS 18). ``onehot[slot, i]`` places each new row by a matmul (one 1.0
    per row: exact in fp16 too) and a select keeps the other slots."""
    onehot = (torch.arange(cache.shape[2], dtype=pos.dtype)[:, None] == pos[None, :]).to(new.dtype)
    placed = torch.matmul(onehot, new)  # [max_seq_len, seq] @ [1, kv_heads, seq, head_dim]
    return torch.where(onehot.sum(dim=1, keepdim=True) > 0, placed, cache)


def io_cache_model(model: torch.nn.Module, max_seq_len: int) -> PositionedCacheLM:
    """The decoder with its KV cache as inputs and outputs, written by ``write_onehot``."""
    wrapped = PositionedCacheLM(model, max_seq_len, write="index", cache="io").eval()
    for layer in wrapped.cache.layers:
        layer.write = write_onehot
    return wrapped


def cache_output_name(name: str) -> str:
    """Core ML refuses an output named like an input: ``k_cache_0`` comes back as ``k_cache_0_out``."""
    return f"{name}_out"
