"""A GGUF model running in this process through llama-cpp-python's low-level API.

One model, one context, one pre-allocated batch: ``decode(tokens, start)`` puts token ids
at positions ``start..`` in the KV cache and returns the logits of the last one. The
parity check and the Python harness both drive llama.cpp through this class, with the
context settings llama-bench uses (``context_params``), so the three agree on what runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from slmdeploy.errors import SlmdeployError


class LlamaCppRunError(SlmdeployError):
    """llama.cpp refused a model, a context or a batch (the message has its return code)."""


def default_threads() -> int:
    """Threads for ``threads=0``: one per online CPU (the harness protocol's "runtime default" for
    llama.cpp, where the library's own default is a fixed 4)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def context_params(lc, n_ctx: int, threads: int, exact: bool = False):
    """llama-bench's context: its batch sizes (2048 / 512), f16 KV cache, flash attention auto,
    a sliding-window cache of the window's size (``swa_full`` off).

    ``exact``: an f32 KV cache and no flash attention (whose CPU kernel rounds Q, K and V to
    f16), so the converted weights are checked in their own arithmetic.
    """
    params = lc.llama_context_default_params()
    params.n_ctx = n_ctx
    params.n_batch = 2048
    params.n_ubatch = 512
    params.n_threads = params.n_threads_batch = threads
    params.type_k = params.type_v = lc.GGML_TYPE_F32 if exact else lc.GGML_TYPE_F16
    params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED if exact else lc.LLAMA_FLASH_ATTN_TYPE_AUTO
    params.swa_full = False
    return params


class Session:
    """``Session(path, n_ctx)``; ``decode(tokens, start) -> logits`` (a view, valid until the next call)."""

    def __init__(self, path: Path | str, n_ctx: int, threads: int = 0, max_tokens: int | None = None,
                 exact: bool = False) -> None:
        from slmdeploy.llamacpp.bindings import llama_cpp

        self.lc = lc = llama_cpp()
        lc.llama_backend_init()
        self.threads = threads or default_threads()
        self.model = lc.llama_model_load_from_file(str(path).encode(), lc.llama_model_default_params())
        if not self.model:
            raise LlamaCppRunError(f"llama.cpp could not load {path} (not a GGUF it reads, or damaged).")
        self.ctx = lc.llama_init_from_model(self.model, context_params(lc, n_ctx, self.threads, exact))
        if not self.ctx:
            lc.llama_model_free(self.model)
            raise LlamaCppRunError(f"llama.cpp could not create a context of {n_ctx} tokens for {path}.")
        self.n_ctx = n_ctx
        self.vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.capacity = max_tokens or n_ctx
        self.batch = lc.llama_batch_init(self.capacity, 0, 1)

    def reset(self) -> None:
        """Empty the KV cache (a new sequence starts at position 0)."""
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)

    def decode(self, tokens: Sequence[int], start: int) -> np.ndarray:
        """Decode ``tokens`` at positions ``start..``; the logits of the last one, float32[vocab]."""
        lc, batch, n = self.lc, self.batch, len(tokens)
        if not 0 < n <= self.capacity or start + n > self.n_ctx:
            raise LlamaCppRunError(f"{n} tokens at position {start} do not fit (batch {self.capacity}, context {self.n_ctx}).")
        batch.n_tokens = n
        for i, token in enumerate(tokens):
            batch.token[i] = int(token)
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == n - 1
        code = lc.llama_decode(self.ctx, batch)
        if code != 0:
            raise LlamaCppRunError(f"llama_decode returned {code} for {n} tokens at position {start}.")
        logits = lc.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(logits, shape=(self.vocab,))

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lc.llama_batch_free(self.batch)
            self.lc.llama_free(self.ctx)
            self.lc.llama_model_free(self.model)
            self.ctx = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class GGUFMethod:
    """``execute([tokens, input_pos]) -> [logits[1, vocab]]`` (torch tensors) on a session, the method
    interface the parity check and the Python harness drive; position 0 starts a new sequence."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def execute(self, inputs):
        import torch

        tokens, positions = inputs
        start = int(positions[0])
        if start == 0:
            self.session.reset()
        logits = self.session.decode(tokens[0].tolist(), start)
        return [torch.from_numpy(logits.copy()).unsqueeze(0)]
