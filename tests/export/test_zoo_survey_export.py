"""The survey's zoo entries export to host-xnnpack with a parity verdict (``pytest -m slow``).

Each entry is exported cut to its first layers (``<entry>@2l``; RecurrentGemma ``@3l``, one whole
recurrent/recurrent/attention pattern) at its published widths, heads and vocabulary: the graph
per layer is the one of the full model, while a full-depth 1B-4B fp32 export would need 4-16 GB and
minutes per model. The default run checks the depth cut itself on one entry, exporting nothing.
"""

from __future__ import annotations

import pytest

from slmdeploy import zoo
from slmdeploy.errors import ExportError, UnknownModelError
from slmdeploy.export import export
from slmdeploy.export.source import architecture_facts, from_zoo

TARGET = "host-xnnpack"
WHOLE_PATTERN = {"recurrent_gemma": 3}  # layers of one full block pattern, where 2 would miss a block type


def reduced(name: str) -> str:
    layers = WHOLE_PATTERN.get(zoo.get(name).hf_config.get("model_type"), 2)
    return f"{name}@{layers}l"


# Families the LLM export refuses on host-xnnpack, with the words of its one-line reason (docs/zoo.md).
REFUSED = {"bloom": "ALiBi", "recurrent_gemma": "recurrent state", "minicpm3": "latent attention"}
SURVEY_MODELS = [reduced(n) for n in zoo.names() if zoo.get(n).survey is not None]


def test_depth_cut_keeps_the_widths_and_drops_layers():
    full, cut = from_zoo("tinyllama-1.1b"), from_zoo("tinyllama-1.1b@2l")
    f, c = full.facts(), cut.facts()
    assert (c["layers"], f["layers"]) == (2, 22)
    assert {k: v for k, v in c.items() if k != "layers"} == {k: v for k, v in f.items() if k != "layers"}
    assert cut.fingerprint != full.fingerprint and cut.name == "tinyllama-1.1b@2l"
    assert architecture_facts(from_zoo("gpt2-xl@2l").config)["layers"] == 2  # GPT-2 names it n_layer
    assert from_zoo("recurrentgemma-2b@3l").config["block_types"] == ["recurrent", "recurrent", "attention"]
    with pytest.raises(UnknownModelError, match="has 22 layers"):
        from_zoo("tinyllama-1.1b@40l")


@pytest.mark.parametrize("name", ["bloom-560m", "recurrentgemma-2b", "minicpm3-4b"])
def test_unsupported_family_is_refused_in_one_line_before_any_work(name, tmp_path):
    model = reduced(name)
    with pytest.raises(ExportError) as err:
        export(model, TARGET, tmp_path / "out", max_seq_len=64, progress=False)
    message = str(err.value)
    assert message.startswith(f"{model} ({zoo.get(name).architecture}) cannot be exported as an LLM: ")
    assert REFUSED[zoo.get(name).hf_config["model_type"]] in message and "\n" not in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("model", SURVEY_MODELS)
def test_survey_entry_exports_to_host_xnnpack_and_matches_eager(model, export_once):
    model_type = zoo.get(model.split("@")[0]).hf_config["model_type"]
    outcome = export_once(model, TARGET)
    if model_type in REFUSED:
        assert isinstance(outcome.error, ExportError) and REFUSED[model_type] in str(outcome.error)
        return
    m = outcome.get().manifest
    assert m.model["id"] == model
    assert m.model["architecture"]["architecture"] == zoo.get(model.split("@")[0]).architecture
    v = m.verification
    assert v["status"] == "passed", v
    assert v["relative_diff"] <= 1e-3 and v["top1_agreement"] == 1.0, v
