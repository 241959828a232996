"""The zoo holds published configs; built models must have the published parameter counts."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from slmdeploy import zoo
from slmdeploy.errors import UnknownModelError
from slmdeploy.export.source import architecture_facts, resolve


def _param_count(config: dict) -> int:
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "name, published_params",
    [
        ("smollm2-135m", 134_515_008),  # HuggingFaceTB/SmolLM2-135M
        ("qwen2.5-0.5b", 494_032_768),  # Qwen/Qwen2.5-0.5B
    ],
)
def test_zoo_entry_matches_published_parameter_count(name, published_params):
    assert _param_count(zoo.get(name).hf_config) == published_params


def test_zoo_entries_agree_with_the_survey_table():
    facts = architecture_facts(zoo.get("smollm2-135m").hf_config)
    # SmolLM-135M row of the survey: 30 layers, hidden 576, 9 heads, vocab 49152, FFN ratio 8/3.
    assert (facts["layers"], facts["hidden_size"], facts["heads"], facts["vocab_size"]) == (30, 576, 9, 49152)
    assert facts["intermediate_size"] / facts["hidden_size"] == pytest.approx(8 / 3)
    assert facts["kv_heads"] == 3  # GQA, from the published config (the survey has no KV-head count)
    qwen = architecture_facts(zoo.get("qwen2.5-0.5b").hf_config)
    assert (qwen["layers"], qwen["hidden_size"], qwen["heads"], qwen["kv_heads"], qwen["vocab_size"]) == (24, 896, 14, 2, 151936)


def test_ci_model_is_a_small_gqa_swiglu_rmsnorm_llama():
    cfg = zoo.get("llama-tiny").hf_config
    assert cfg["model_type"] == "llama" and cfg["hidden_act"] == "silu"
    assert cfg["num_key_value_heads"] < cfg["num_attention_heads"]
    assert _param_count(cfg) < 10_000_000


def test_unknown_model_names_the_choices():
    with pytest.raises(UnknownModelError, match="llama-tiny"):
        resolve("no-such-model")


def test_missing_checkpoint_dir_is_a_clear_error(tmp_path):
    with pytest.raises(UnknownModelError, match="does not exist"):
        resolve(str(tmp_path / "nope" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownModelError, match="no config.json"):
        resolve(str(tmp_path / "empty"))
