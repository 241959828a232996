"""The SLM survey's architectures in the zoo: every survey row is a zoo entry or is excluded in
docs/zoo.md with a reason, and every entry's published config builds (on the meta device) the
model the survey describes: its layers, widths, heads, vocabulary, attention type and size."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from slmdeploy import zoo
from slmdeploy.export.source import architecture_facts

REPO = Path(__file__).resolve().parents[2]
# A copy of the survey's architecture table (../shared/data/ beside the development checkout; CI has only the repo).
SURVEY_FILE = Path(__file__).parent / "data" / "slm-survey-architectures.json"
DOC = REPO / "docs" / "zoo.md"
TOLERANCE = 0.15

# Entries whose survey size label counts the parameters without the (large, tied) embedding table.
LABEL_WITHOUT_EMBEDDINGS = {"gemma-2b", "gemma2-2b", "recurrentgemma-2b", "llama3.2-1b"}
# Survey value -> published config value, documented in docs/zoo.md.
VOCAB_DISCREPANCY = {"fox-1-1.6b": (32000, 256000)}
ATTENTION_DISCREPANCY = {"phi3-mini-4k": ("GQA", "MHA"), "mobilellama-1.4b": ("GQA", "MHA")}


def _survey_rows() -> dict[str, dict]:
    return {r["Model"]: r for r in json.loads(SURVEY_FILE.read_text())}


def _doc_section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _excluded() -> dict[str, str]:
    """Survey model -> reason, from the doc's exclusion table."""
    rows = re.findall(r"^\| `([^`]+)` \| (.*) \|$", _doc_section("Survey rows not in the zoo"), re.M)
    return dict(rows)


SURVEY_ENTRIES = sorted(n for n in zoo.names() if zoo.get(n).survey is not None)


@lru_cache(maxsize=None)
def _built(name: str):
    """(config, total params, input-embedding params, tied) of the entry, built on the meta device."""
    config = AutoConfig.for_model(**zoo.get(name).hf_config)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    return config, total, embedding.numel(), head is embedding


def _size(label: str) -> float:
    """The survey's Parameters column ("125M", "1.1B", "0.5B") as a number."""
    m = re.fullmatch(r"([\d.]+)\s*([MB])", label.strip().upper())
    assert m, f"unreadable Parameters {label!r}"
    return float(m[1]) * (1e9 if m[2] == "B" else 1e6)


def _attention_type(config) -> str:
    if getattr(config, "kv_lora_rank", None):
        return "MLA"
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    return "MHA" if kv == heads else "MQA" if kv == 1 else "GQA"


def test_every_survey_row_is_a_zoo_entry_or_excluded_with_a_reason():
    rows = _survey_rows()
    linked = [zoo.get(n).survey.model for n in SURVEY_ENTRIES]
    excluded = _excluded()
    assert len(linked) == len(set(linked)), "a survey row is linked by two entries"
    assert not set(linked) & set(excluded), "a survey row is both a zoo entry and excluded"
    assert set(linked) | set(excluded) == set(rows), {
        "missing": sorted(set(rows) - set(linked) - set(excluded)),
        "unknown": sorted((set(linked) | set(excluded)) - set(rows)),
    }
    assert all(len(reason) > 40 for reason in excluded.values()), "each exclusion says why"
    assert len(rows) == 72 and len(linked) >= 58


def test_survey_links_quote_the_survey_rows():
    rows = _survey_rows()
    for name in SURVEY_ENTRIES:
        survey = zoo.get(name).survey
        assert survey.parameters == rows[survey.model]["Parameters"].strip(), name


def test_the_doc_table_maps_each_row_to_its_entry():
    table = re.findall(r"^\| `([^`]+)` \| [^|]+ \| `([^`]+)` \|", _doc_section("Survey rows → zoo entries"), re.M)
    assert dict(table) == {zoo.get(n).survey.model: n for n in SURVEY_ENTRIES}


@pytest.mark.parametrize("name", SURVEY_ENTRIES)
def test_published_config_builds_the_survey_architecture(name):
    entry = zoo.get(name)
    row = _survey_rows()[entry.survey.model]
    config, total, embedding, _ = _built(name)
    facts = architecture_facts(entry.hf_config)
    got = (facts["layers"], facts["hidden_size"], facts["heads"], facts["vocab_size"])
    want = tuple(int(row[k]) for k in ("LayerNumber", "HiddenSize", "HeadNum", "VocabularySize"))
    if name in VOCAB_DISCREPANCY:
        survey_vocab, published_vocab = VOCAB_DISCREPANCY[name]
        assert want[3] == survey_vocab and got[3] == published_vocab
        got, want = got[:3], want[:3]
    assert got == want
    survey_type, built_type = row["AttentionType"].strip(), _attention_type(config)
    assert (survey_type, built_type) == ATTENTION_DISCREPANCY.get(name, (built_type, built_type))


@pytest.mark.parametrize("name", SURVEY_ENTRIES)
def test_parameter_count_matches_the_survey_size(name):
    _, total, embedding, _ = _built(name)
    label = _size(zoo.get(name).survey.parameters)
    if name in LABEL_WITHOUT_EMBEDDINGS:
        assert abs(total / label - 1) > TOLERANCE  # the exception is needed...
        assert abs((total - embedding) / label - 1) <= TOLERANCE, (total - embedding, label)  # ...and holds
    else:
        assert abs(total / label - 1) <= TOLERANCE, (total, label)


@pytest.mark.parametrize("name", SURVEY_ENTRIES)
def test_architecture_facts_agree_with_the_built_model(name):
    """What slmdeploy reports (models, manifests, memory estimates) is what transformers builds."""
    config, _, _, tied = _built(name)
    f = architecture_facts(zoo.get(name).hf_config)
    assert f["layers"] == config.num_hidden_layers and f["hidden_size"] == config.hidden_size
    assert f["heads"] == config.num_attention_heads and f["vocab_size"] == config.vocab_size
    assert f["kv_heads"] == (getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    assert f["tie_word_embeddings"] == tied


def test_entries_are_named_like_the_zoo():
    for name in SURVEY_ENTRIES:
        assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", name), name
        assert zoo.get(name).path.name == f"{name}.json"


def test_models_survey_lists_only_survey_entries_with_their_rows():
    from click.testing import CliRunner

    from slmdeploy.cli.main import cli

    result = CliRunner().invoke(cli, ["models", "--survey", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert sorted(m["name"] for m in listed) == SURVEY_ENTRIES
    opt = next(m for m in listed if m["name"] == "opt-125m")
    assert opt["survey"] == {"model": "facebook/opt-125m", "parameters": "125M"}
    assert opt["architecture"]["hidden_size"] == 768 and opt["architecture"]["tie_word_embeddings"] is True
    everything = json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)
    assert {"llama-tiny", "opt-125m"} <= {m["name"] for m in everything} and len(everything) > len(listed)
