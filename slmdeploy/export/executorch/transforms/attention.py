"""Grouped-query attention without copying the KV cache, and a mask built once per call.

Hugging Face's SDPA path repeats each KV head for its query heads (``repeat_kv``: an
``expand`` + copy of the whole cache every step, not delegable) and builds the causal mask
with ops XNNPACK does not take. Here the query heads are regrouped under their KV head
instead — ``[1, kv, rep * seq, dim]`` against ``[1, kv, len, dim]`` — so attention is two
batched matmuls and a softmax, all delegated; the additive mask is computed once by the
wrapper from the positions and shared by every layer.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface

ATTENTION = "slmdeploy_grouped_sdpa"


def grouped_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, softcap=None, **kwargs):
    batch, heads, seq, dim = query.shape
    kv_heads = key.shape[1]
    q = query.reshape(batch, kv_heads, (heads // kv_heads) * seq, dim)
    scores = torch.matmul(q, key.transpose(2, 3)) * (scaling if scaling is not None else dim**-0.5)
    if softcap is not None:  # Gemma 2
        scores = torch.tanh(scores / softcap) * softcap
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores.float(), dim=-1).to(query.dtype)
    out = torch.matmul(probs, value).reshape(batch, heads, seq, dim)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION, grouped_sdpa)


def causal_mask(input_pos: torch.Tensor, cache_len: int, groups: int) -> torch.Tensor:
    """Additive mask ``[1, 1, groups * seq, cache_len]``: query at position p sees keys 0..p."""
    keys = torch.arange(cache_len, device=input_pos.device)
    visible = keys.unsqueeze(0) <= input_pos.unsqueeze(1)
    mask = torch.zeros(visible.shape, dtype=torch.float32).masked_fill(~visible, float("-inf"))
    return mask.repeat(groups, 1).unsqueeze(0).unsqueeze(0)


def use_grouped_attention(model: torch.nn.Module) -> bool:
    """Switch the model to the grouped attention (False where the model does not allow it)."""
    try:
        model.set_attn_implementation(ATTENTION)
    except (ValueError, AttributeError):
        return False
    return True
