"""The survey presets (examples/studies/survey*.toml) parse, cover the survey's zoo entries and use real targets."""

from pathlib import Path

from slmdeploy.export.target import load_target
from slmdeploy.study.spec import load_study
from slmdeploy.zoo import registry

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"


def test_survey_preset_is_the_survey_setting():
    study = load_study(STUDIES / "survey.toml")
    assert set(study.models) == {n for n in registry.names() if registry.get(n).survey}
    assert [(w.prompt, w.gen) for w in study.workloads] == [(50, 50)]
    quants = {load_target(t).quantization for t in study.targets}
    assert quants == {"fp32", "q8_0", "8da4w"}  # fp32, 8-bit, 4-bit weights


def test_smoke_preset_spans_attention_types_and_vocabularies():
    from slmdeploy.analysis.architecture import attention_type
    from slmdeploy.export.source import architecture_facts

    study = load_study(STUDIES / "survey-smoke.toml")
    facts = [architecture_facts(registry.get(m).hf_config) for m in study.models]
    assert {attention_type(f["heads"], f["kv_heads"]) for f in facts} == {"MHA", "GQA", "MQA"}
    assert len({f["vocab_size"] for f in facts}) > 1
    assert [(w.prompt, w.gen) for w in study.workloads] == [(50, 50)]
