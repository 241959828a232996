"""GPT-2's Conv1D projections become Linear before weight quantization (transforms/conv1d.py), so they are quantized."""

import copy

import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D

from slmdeploy.export.executorch import quantize
from slmdeploy.export.executorch.transforms import replace_conv1d


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=512, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


def test_the_swap_computes_the_same_logits():
    model, tokens = _gpt2(), torch.randint(0, 512, (1, 8))
    expected = model(tokens).logits
    assert replace_conv1d(model) == 8  # c_attn, attn c_proj, c_fc, mlp c_proj per layer
    assert not any(isinstance(m, Conv1D) for m in model.modules())
    assert torch.equal(model(tokens).logits, expected)


def test_8da4w_quantizes_every_gpt2_projection():
    model = quantize.apply(copy.deepcopy(_gpt2()), "8da4w", {"group_size": 32})
    projections = [m for block in model.transformer.h for m in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc,
                                                                  block.mlp.c_proj)]
    assert len(projections) == 8
    # torchao keeps a quantized Linear's weight as a tensor subclass (int4 values, int8 storage)
    assert all(type(p.weight).__name__ == "IntxUnpackedToInt8Tensor" for p in projections)
