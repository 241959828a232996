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


LAB = """name = "lab"
models = ["llama-tiny"]
targets = ["host-xnnpack"]

[devices]
specs = ["adb:AAA"]
labels = { soc = "SM8650" }

[[devices.device]]
spec = "adb:BBB"

[[workloads]]
prompt = 50
gen = 50

[run]
runs = 2
"""


def test_device_override_replaces_the_devices_and_keeps_the_rest(tmp_path):
    from slmdeploy.study import build_plan
    from slmdeploy.study.devices_override import load_study_on, with_devices

    text = with_devices(LAB, ["local", "ssh:pi@board.local"])
    assert "adb:AAA" not in text and "adb:BBB" not in text and "SM8650" not in text
    assert 'prompt = 50' in text and 'runs = 2' in text
    path = tmp_path / "lab.toml"
    path.write_text(LAB)
    study = load_study_on(path, ["local", "ssh:pi@board.local"])
    assert study.run.runs == 2 and [(w.prompt, w.gen) for w in study.workloads] == [(50, 50)]
    assert [d.spec for d in build_plan(study).devices] == ["local", "ssh:pi@board.local"]


def test_a_study_dir_keeps_the_override_for_resume(tmp_path):
    from slmdeploy.study import build_plan
    from slmdeploy.study.directory import StudyDir

    sd = StudyDir.create(tmp_path / "s", STUDIES / "survey-smoke.toml", ["ssh:pi@board.local"])
    assert [d.spec for d in build_plan(sd.study()).devices] == ["ssh:pi@board.local"]
