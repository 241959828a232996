"""A decoder LLM as one exportable method with a static KV cache.

``forward(tokens[1, seq], input_pos[seq]) -> logits[1, vocab]`` serves both phases:
prefill calls it with ``seq = P`` and decode with ``seq = 1``; the KV cache lives in
mutable buffers inside the program, so the caller only tracks the position. Only the
last position's logits are returned, which is all a generation loop needs and keeps
prefill from materialising ``P x vocab`` floats.
"""

from __future__ import annotations

import torch
from transformers import StaticCache
from transformers.cache_utils import StaticLayer, StaticSlidingWindowLayer
from transformers.integrations.executorch import get_head_shapes

from slmdeploy.export.executorch import transforms


class StaticCacheLM(torch.nn.Module):
    """``delegable=True`` applies the source transforms (see ``transforms/``); the parity
    reference is built without them, so the check covers them too."""

    def __init__(self, model: torch.nn.Module, max_seq_len: int, delegable: bool = False) -> None:
        super().__init__()
        self.model = model
        self.max_seq_len = max_seq_len
        config = model.config.get_text_config()
        self.groups = 0
        if delegable:
            transforms.replace_rms_norms(model)
            if transforms.use_grouped_attention(model):
                self.groups = config.num_attention_heads // getattr(config, "num_key_value_heads", config.num_attention_heads)
        self.cache = StaticCache(config=config, max_cache_len=max_seq_len)
        # Sliding-window layers have data-dependent control flow; with max_seq_len within the
        # window a plain static layer computes the same thing (checked by the exporter).
        for i, layer in enumerate(self.cache.layers):
            if isinstance(layer, StaticSlidingWindowLayer):
                self.cache.layers[i] = StaticLayer(max_seq_len)
        kv_heads, head_dim = get_head_shapes(config)
        self.cache.early_initialization(1, kv_heads, head_dim, model.dtype, torch.device("cpu"))
        # Buffers make the cache part of the exported program's mutable state.
        for i, layer in enumerate(self.cache.layers):
            self.register_buffer(f"key_cache_{i}", layer.keys, persistent=False)
            self.register_buffer(f"value_cache_{i}", layer.values, persistent=False)
            self.register_buffer(f"cache_len_{i}", layer.cumulative_length, persistent=False)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        for layer in self.cache.layers:
            layer.cumulative_length.copy_(input_pos[0])
        mask = transforms.causal_mask(input_pos, self.max_seq_len, self.groups) if self.groups else None
        out = self.model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=input_pos.unsqueeze(0),
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :]

    def example_inputs(self, seq: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(1, seq, dtype=torch.long), torch.arange(seq, dtype=torch.long))

    def dynamic_shapes(self):
        seq = torch.export.Dim("seq", min=1, max=self.max_seq_len - 1)
        return ({1: seq}, {0: seq})
