"""Zoo entries per family: published configs reproduce the published parameter counts and the
survey table; each CI-size entry is its family's real architecture, scaled down."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from slmdeploy import zoo
from slmdeploy.export.source import architecture_facts

# Parameter counts as published on the models' Hugging Face pages / papers.
PUBLISHED_PARAMS = {
    "smollm-135m": 134_515_008,
    "qwen3-0.6b": 596_049_920,
    "gemma-2b": 2_506_172_416,
    "gemma2-2b": 2_614_341_888,
    "phi3-mini-4k": 3_821_079_552,
    "pythia-160m": 162_322_944,
    "llama3.2-1b": 1_235_814_400,
}

# Rows of /work/shared/data/slm-survey-architectures.json (layers, hidden, heads, vocab, FFN ratio,
# context). The survey's FFN ratio counts both halves of a gated FFN for some rows (Gemma 2), so a
# config matches when intermediate/hidden is the ratio or half of it.
SURVEY = {
    "smollm-135m": (30, 576, 9, 49152, 2.6666666666666665, [2048]),
    "gemma-2b": (18, 2048, 8, 256000, 8, [8192]),
    "gemma2-2b": (26, 2304, 8, 256000, 8, [8192]),
    "phi3-mini-4k": (32, 3072, 32, 32064, 2.6666666666666665, [4096, 128000]),
    "pythia-160m": (12, 768, 12, 50304, 4, [2048]),
    "llama3.2-1b": (16, 2048, 32, 128256, 4, [131072]),
    "qwen2.5-0.5b": (24, 896, 14, 151936, 5.428571428571429, [32768]),
}

# CI-size entry -> the published entry whose architecture it scales down.
SCALED = {
    "llama-micro": "llama3.2-1b",
    "qwen2-tiny": "qwen2.5-0.5b",
    "qwen3-tiny": "qwen3-0.6b",
    "gemma-tiny": "gemma-2b",
    "gemma2-tiny": "gemma2-2b",
    "phi3-tiny": "phi3-mini-4k",
    "pythia-tiny": "pythia-160m",
    "smollm-tiny": "smollm-135m",
}
# What makes a family a family: these config fields must match the published entry.
STRUCTURE = ("architectures", "model_type", "hidden_act", "hidden_activation", "attn_logit_softcapping",
             "final_logit_softcapping", "rotary_pct", "use_parallel_residual", "attention_bias", "use_sliding_window")


def _meta_model(name: str):
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(**zoo.get(name).hf_config))


@pytest.mark.parametrize("name, params", sorted(PUBLISHED_PARAMS.items()))
def test_published_config_has_the_published_parameter_count(name, params):
    assert sum(p.numel() for p in _meta_model(name).parameters()) == params


@pytest.mark.parametrize("name, row", sorted(SURVEY.items()))
def test_published_config_agrees_with_the_survey(name, row):
    layers, hidden, heads, vocab, ffn, contexts = row
    f = architecture_facts(zoo.get(name).hf_config)
    assert (f["layers"], f["hidden_size"], f["heads"], f["vocab_size"]) == (layers, hidden, heads, vocab)
    ratio = f["intermediate_size"] / f["hidden_size"]
    assert ratio == pytest.approx(ffn) or 2 * ratio == pytest.approx(ffn)
    assert f["max_position_embeddings"] in contexts


def _layout(name: str) -> set[str]:
    """Parameter names with layer numbers folded, the tied/untied head left out."""
    names = {re.sub(r"\.\d+\.", ".N.", n) for n, _ in _meta_model(name).named_parameters()}
    return names - {"lm_head.weight"}


@pytest.mark.parametrize("tiny, published", sorted(SCALED.items()))
def test_ci_entry_is_its_familys_architecture_scaled_down(tiny, published):
    small, big = zoo.get(tiny).hf_config, zoo.get(published).hf_config
    for key in STRUCTURE:
        assert small.get(key) == big.get(key), key
    assert _layout(tiny) == _layout(published)
    assert small["num_hidden_layers"] == 2 and small["hidden_size"] < big["hidden_size"] // 5
    gqa = big.get("num_key_value_heads", big["num_attention_heads"]) < big["num_attention_heads"]
    assert (small.get("num_key_value_heads", small["num_attention_heads"]) < small["num_attention_heads"]) == gqa
    assert sum(p.numel() for p in _meta_model(tiny).parameters()) < 300_000
