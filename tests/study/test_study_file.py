"""Study files and plans: every mistake named by its key before any work; plans that expand,
group and identify jobs the same way every time. No device, no export."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from slmdeploy.study import StudyError, build_plan, load_study
from slmdeploy.study.journal import Journal, load_state

BASE = """
name = "lab"
models = ["llama-tiny", "smollm2-135m"]
targets = ["host-xnnpack", "host-xnnpack-8da4w"]

[devices]
specs = ["local", "adb:R58N12ABCDE"]

[[workloads]]
prompt = [64, 128]
gen = 32
threads = [1, 4]
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_lists_expand_into_every_combination_grouped_by_artifact_per_device(tmp_path):
    plan = build_plan(load_study(write(tmp_path, BASE)))
    assert len(plan.exports) == 4
    assert len(plan.jobs) == 2 * 2 * 2 * (2 * 2)  # models × targets × devices × (prompts × threads)
    assert len({j.id for j in plan.jobs}) == len(plan.jobs)
    local = plan.jobs_for("local")
    # one artifact's jobs are consecutive: deployed once, then found on the device
    order = [j.export for j in local]
    assert [e for i, e in enumerate(order) if i == 0 or order[i - 1] != e] == plan.exports
    assert {(j.workload.prompt, j.workload.threads) for j in local[:4]} == {(64, 1), (64, 4), (128, 1), (128, 4)}


def test_job_ids_are_stable_and_change_with_what_is_measured(tmp_path):
    first = build_plan(load_study(write(tmp_path, BASE)))
    again = build_plan(load_study(write(tmp_path, BASE, "copy.toml")))
    assert [j.id for j in first.jobs] == [j.id for j in again.jobs]
    more_runs = build_plan(load_study(write(tmp_path, BASE + "\n[run]\nruns = 9\n", "runs.toml")))
    assert not {j.id for j in first.jobs} & {j.id for j in more_runs.jobs}


def test_the_same_phone_named_twice_is_one_device_with_both_labels(tmp_path):
    inventory = write(tmp_path, """
        [[device]]
        spec = "adb-direct:127.0.0.1:5555"
        labels = { shelf = "A3", soc = "SM8650" }
        [[device]]
        spec = "adb:OTHER"
        labels = { shelf = "B1", soc = "Tensor G3" }
    """, "lab.toml")
    study = write(tmp_path, f"""
        name = "x"
        models = ["llama-tiny"]
        targets = ["host-xnnpack"]
        [devices]
        inventory = "{inventory.name}"
        labels = {{ soc = "SM8650" }}
        [[devices.device]]
        spec = "adb:127.0.0.1:5555"
        labels = {{ owner = "ci" }}
    """)
    plan = build_plan(load_study(study))
    assert [(d.spec, d.labels) for d in plan.devices] == [
        ("adb:127.0.0.1:5555", {"owner": "ci", "shelf": "A3", "soc": "SM8650"})]
    assert dict(plan.jobs[0].labels) == {"owner": "ci", "shelf": "A3", "soc": "SM8650"}


def test_targets_a_device_cannot_run_are_listed_not_dropped(tmp_path):
    plan = build_plan(load_study(write(tmp_path, BASE.replace('"host-xnnpack-8da4w"', '"ios-coreml-ane-fp16"'))))
    assert {j.export.target for j in plan.jobs} == {"host-xnnpack"}
    assert len(plan.skipped) == 2 * 2  # models × devices
    assert all("Apple devices only" in s.reason for s in plan.skipped)
    assert plan.summary()["skipped"][0]["target"] == "ios-coreml-ane-fp16"


def test_repeats_come_after_a_first_pass_over_every_job(tmp_path):
    plan = build_plan(load_study(write(tmp_path, BASE + "\n[run]\nrepeat = 2\n")))
    local = plan.jobs_for("local")
    assert [j.repeat for j in local] == [0] * 16 + [1] * 16
    assert local[0].name.endswith(local[0].id) and "rep2" in local[16].name


@pytest.mark.parametrize("old, new, message", [
    ('name = "lab"', "", r"study.toml: name is required"),
    ('models = ["llama-tiny", "smollm2-135m"]', "", r"models is required"),
    ('name = "lab"', 'name = "lab"\nmodels2 = 1', r"study.toml: models2 is not a study setting here; this table takes"),
    ("prompt = [64, 128]", "prompt = [64, -5]",
     r"workloads\[0\].prompt must be an integer >= 1 \(or a list of them\), got -5"),
    ("gen = 32", 'gen = "many"', r"workloads\[0\].gen must be an integer >= 0 .* got 'many'"),
    ('"adb:R58N12ABCDE"]', '"phone-7"]', r"devices: cannot read device 'phone-7'"),
    ('specs = ["local", "adb:R58N12ABCDE"]', "", r"devices.specs \(or adb = \"all\", or inventory = FILE\) is needed"),
    ('"host-xnnpack-8da4w"]', '"host-xnnpack-4bit"]', r"targets\[1\]: unknown target 'host-xnnpack-4bit'"),
    ('"smollm2-135m"]', '"smolm2"]', r"models\[1\]: unknown model 'smolm2'"),
    ("[devices]", "[devices]\nrequire_al = true", r"devices.require_al is not a study setting here"),
    ("[devices]", "[run]\nruns = 0\n[devices]", r"run.runs must be at least 1, got 0"),
    ("[devices]", "[cooldown]\npause_s = -1\n[devices]", r"cooldown.pause_s must be at least 0"),
    ("[devices]", '[execution]\nbackend = "slurm"\n[devices]', r"execution.backend must be one of local, ray"),
])
def test_a_bad_key_is_named_in_one_line_before_any_work(tmp_path, old, new, message):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(StudyError, match=message) as err:
        build_plan(load_study(path))
    assert "\n" not in str(err.value)


def test_malformed_toml_and_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(StudyError, match=r"is not valid TOML: .*line 2"):
        load_study(write(tmp_path, 'name = "x"\nmodels = [1,, 2]\n'))
    with pytest.raises(StudyError, match="does not exist; see examples/studies/"):
        load_study(tmp_path / "nope.toml")
    with pytest.raises(StudyError, match=r"devices.inventory names .*lab.toml, which does not exist"):
        load_study(write(tmp_path, BASE.replace('specs = ["local", "adb:R58N12ABCDE"]', 'inventory = "lab.toml"')))


def test_a_torn_journal_line_is_cut_and_the_next_event_starts_clean(tmp_path):
    journal = Journal(tmp_path)
    journal.write("start", job="a", attempt=1, run_dir="runs/a-a1")
    journal.write("end", job="a", attempt=1, status="complete", run_dir="runs/a-a1")
    journal.write("start", job="b", attempt=1, run_dir="runs/b-a1")
    journal.close()
    with open(tmp_path / "journal.jsonl", "ab") as fh:
        fh.write(b'{"event":"end","job":"b","att')  # killed mid-write
    assert load_state(tmp_path).torn == 1
    journal = Journal(tmp_path)  # reopening repairs
    journal.write("end", job="b", attempt=1, status="failed", run_dir="runs/b-a1", error="x")
    journal.close()
    state = load_state(tmp_path)
    assert state.torn == 0
    assert state.jobs["a"].complete and state.jobs["b"].status == "failed" and state.jobs["b"].open_attempt is None
