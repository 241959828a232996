"""Decoder LLM wrappers whose KV cache is written the way a given runtime can lower.

``StaticCacheLM`` (llm_module.py) keeps transformers' ``StaticLayer`` as it is: a
``cumulative_length`` state and ``index_copy_`` writes, which XNNPACK and the portable
kernels handle. Other backends need a different shape of the same computation:

* Core ML (delegate and standalone) lowers a mutable buffer to an iOS 18 *state* only when
  it is written by a slice (``cache[:, :, p:p + n] = kv`` -> ``slice_update``), and it has
  no lowering for ``index_copy``/``index_put`` with a position tensor, nor for a 0-d state.
* Vulkan, QNN and MPS reject the 0-d ``cumulative_length`` buffer mutation.
* TFLite has no mutable state across signatures: the cache is an input and an output of
  both the prefill and the decode signature, written with ``tfl.dynamic_update_slice``.

``PositionedCacheLM`` serves all of them: the cache position comes from ``input_pos``
alone (no cumulative-length state), and the write is chosen per backend. The calling
convention is the same as ``StaticCacheLM`` (``slmdeploy.llm/1``), except for the
``io`` cache, whose signature additionally takes and returns the cache tensors.
"""

from __future__ import annotations

from typing import Callable

import torch
from transformers import StaticCache
from transformers.cache_utils import StaticLayer
from transformers.integrations.executorch import get_head_shapes

Write = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def write_index(cache: torch.Tensor, new: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """In place at the positions ``pos`` (``index_copy_``)."""
    return cache.index_copy_(2, pos, new)


def write_slice(cache: torch.Tensor, new: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """In place into the slice starting at ``pos[0]`` (Core ML ``slice_update`` on a state)."""
    start = pos[0].item()
    torch._check_is_size(start)
    torch._check(start + new.shape[2] <= cache.shape[2])
    cache[:, :, start : start + new.shape[2]] = new
    return cache


def write_dynamic_update_slice(cache: torch.Tensor, new: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Out of place, as ``tfl.dynamic_update_slice`` (litert-torch's custom op)."""
    from litert_torch.generative.custom_ops.dynamic_update_slice import dynamic_update_slice

    zero = torch.zeros((), dtype=pos.dtype)
    return dynamic_update_slice(cache, new, [zero, zero, pos[0], zero])


WRITES: dict[str, Write] = {
    "index": write_index,
    "slice": write_slice,
    "dus": write_dynamic_update_slice,
}


class PositionedLayer(StaticLayer):
    """A static cache layer written at ``positions`` (set before every call) by ``write``."""

    def __init__(self, max_cache_len: int, write: Write) -> None:
        super().__init__(max_cache_len)
        self.write = write
        self.positions: torch.Tensor | None = None

    def update(self, key_states, value_states, *args, **kwargs):
        self.keys = self.write(self.keys, key_states, self.positions)
        self.values = self.write(self.values, value_states, self.positions)
        return self.keys, self.values


class PositionedCacheLM(torch.nn.Module):
    """``forward(tokens[1, seq], input_pos[seq]) -> logits[1, vocab]`` with a backend-shaped cache.

    ``cache="buffer"``: the cache lives in mutable buffers of the program (ExecuTorch
    delegates, Core ML states). ``cache="io"``: ``forward(tokens, input_pos, *kv) ->
    (logits, *kv)`` with ``kv = k_0, v_0, k_1, v_1, ...`` of shape
    ``[1, kv_heads, max_seq_len, head_dim]`` (TFLite).
    """

    def __init__(self, model: torch.nn.Module, max_seq_len: int, write: str = "index", cache: str = "buffer") -> None:
        super().__init__()
        if cache not in ("buffer", "io"):
            raise ValueError(f"cache must be 'buffer' or 'io', not {cache!r}")
        self.model = model
        self.max_seq_len = max_seq_len
        self.io = cache == "io"
        config = model.config.get_text_config()
        self.cache = StaticCache(config=config, max_cache_len=max_seq_len)
        # Sliding-window layers become plain ones: the exporter checks max_seq_len <= window.
        self.cache.layers = [PositionedLayer(max_seq_len, WRITES[write]) for _ in self.cache.layers]
        self.kv_heads, self.head_dim = get_head_shapes(config)
        self.cache.early_initialization(1, self.kv_heads, self.head_dim, model.dtype, torch.device("cpu"))
        if not self.io:
            for i, layer in enumerate(self.cache.layers):
                self.register_buffer(f"key_cache_{i}", layer.keys, persistent=False)
                self.register_buffer(f"value_cache_{i}", layer.values, persistent=False)

    @property
    def num_layers(self) -> int:
        return len(self.cache.layers)

    def cache_shape(self) -> tuple[int, int, int, int]:
        return (1, self.kv_heads, self.max_seq_len, self.head_dim)

    def empty_cache(self) -> list[torch.Tensor]:
        """Zeroed cache tensors in signature order (``io`` cache)."""
        return [torch.zeros(self.cache_shape(), dtype=self.model.dtype) for _ in range(2 * self.num_layers)]

    def cache_names(self) -> list[str]:
        """Names of the cache inputs/outputs of an ``io`` cache, in order."""
        return [f"{kind}_cache_{i}" for i in range(self.num_layers) for kind in ("k", "v")]

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor, **kv: torch.Tensor):
        for i, layer in enumerate(self.cache.layers):
            layer.positions = input_pos
            layer.cumulative_length = input_pos[0]  # the query offset the causal mask reads
            if self.io:
                layer.keys, layer.values = kv[f"k_cache_{i}"], kv[f"v_cache_{i}"]
        out = self.model(input_ids=tokens, attention_mask=self.causal_mask(input_pos), position_ids=input_pos.unsqueeze(0),
                         cache=self.cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :]
        if not self.io:
            return logits
        caches = [t for layer in self.cache.layers for t in (layer.keys, layer.values)]
        return {"logits": logits, **dict(zip(self.cache_names(), caches))}

    def causal_mask(self, input_pos: torch.Tensor) -> torch.Tensor:
        """``[1, 1, seq, max_seq_len]``: query ``i`` sees cache slots ``<= input_pos[i]``.

        Passed to the model as a ready 4-D mask, so transformers' mask builders (vmap'd
        mask functions, sliding-window overlays with symbolic booleans) stay out of the
        exported graph: with ``max_seq_len`` within any sliding window it is the same mask,
        and every backend lowers a compare and a select. Boolean for SDPA, additive for
        the eager attention (Gemma 2's soft-capping).
        """
        allowed = torch.arange(self.max_seq_len)[None, :] <= input_pos[:, None]
        if self.model.config._attn_implementation == "eager":
            zero = torch.zeros((), dtype=self.model.dtype)
            return torch.where(allowed, zero, torch.full((), torch.finfo(self.model.dtype).min, dtype=self.model.dtype))[None, None]
        return allowed[None, None]

    def example_inputs(self, seq: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(1, seq, dtype=torch.long), torch.arange(seq, dtype=torch.long))

    def example_kwargs(self, seq: int = 2) -> dict[str, torch.Tensor]:
        """All inputs by name (the ``io`` cache's signature inputs)."""
        tokens, input_pos = self.example_inputs(seq)
        return {"tokens": tokens, "input_pos": input_pos, **dict(zip(self.cache_names(), self.empty_cache()))}

    def dynamic_shapes(self):
        seq = torch.export.Dim("seq", min=1, max=self.max_seq_len - 1)
        return ({1: seq}, {0: seq})


def program_cache(exported) -> tuple[list[str], list[int], str] | None:
    """The KV cache an exported program holds: its 4-D buffers (names, shape, dtype).

    Read from the program, not the config, so the manifest states what the runtime will allocate.
    (Before decomposition the graph still writes them in place, so ``buffers_to_mutate`` is empty;
    the only 4-D buffers of a decoder are its cache.) None when they differ in shape or there are none.
    """
    tensors = {**exported.state_dict, **exported.constants}
    caches = [(name, tensors[name]) for name in exported.graph_signature.buffers
              if name in tensors and tensors[name].dim() == 4]
    shapes = {tuple(t.shape) for _, t in caches}
    dtypes = {t.dtype for _, t in caches}
    if not caches or len(shapes) != 1 or len(dtypes) != 1:
        return None
    return [name for name, _ in caches], list(shapes.pop()), str(dtypes.pop()).removeprefix("torch.")
