"""A study across emulated phones behind the real adb server: the devices work in parallel, a
dropped link is retried, a phone that is unplugged is quarantined and its remaining jobs
reported as not run, an offline device is listed at start and the study runs on the others."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from slmdeploy.analysis import load_runs
from slmdeploy.devices.emulator import EmulatedPhone
from slmdeploy.devices.emulator.testing import AdbServer, free_port
from slmdeploy.study import StudyError, run_study
from slmdeploy.study.status import study_status


@pytest.fixture
def phones(tmp_path, monkeypatch):
    with AdbServer(home=tmp_path / "adb-home") as server:
        monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(server.port))
        monkeypatch.setenv("ANDROID_USER_HOME", str(tmp_path / "android"))
        started = []
        try:
            for i, profile in enumerate(("pixel8", "galaxy-s24")):
                phone = EmulatedPhone(profile, root=tmp_path / f"phone{i}").start()
                started.append(phone)
                server.connect(phone.serial)
            yield started
        finally:
            for phone in started:
                phone.stop()


def study_file(tmp_path: Path, specs: list[str], reconnect_s: float = 15, **run: object) -> Path:
    settings = {"runs": 1, "warmup": 0, "harness": "native", "telemetry_ms": 0, "retries": 1, "quarantine_after": 2,
                "timeout_s": 120} | run
    path = tmp_path / "phones.toml"
    path.write_text(textwrap.dedent(f"""
        name = "phones"
        models = ["llama-tiny"]
        targets = ["host-xnnpack"]
        [devices]
        specs = {json.dumps(specs)}
        reconnect_s = {reconnect_s}
        [[workloads]]
        prompt = [4, 6, 8]
        gen = 16
        [run]
    """) + "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) + "\n")
    return path


class Script:
    """A sink that records events and acts on some: the lab's bad day, on cue."""

    def __init__(self, actions):
        self.events, self.actions = [], actions

    def emit(self, kind, **fields):
        self.events.append((kind, fields))
        for when, action in self.actions:
            if when(kind, fields, self.events):
                action()

    def close(self):
        pass


def nth(kind: str, device: str, n: int):
    def when(k, f, events):
        return k == kind and f.get("device") == device and \
            sum(1 for e, g in events if e == kind and g.get("device") == device) == n
    return when


def test_a_dropped_link_is_retried_and_an_offline_device_is_listed_while_the_others_run(
        tiny_fp32, bundle, phones, tmp_path):
    flaky, steady = phones
    a, b = f"adb:{flaky.serial}", f"adb:{steady.serial}"
    absent = f"adb-direct:127.0.0.1:{free_port()}"  # nothing listens there
    # the link drops 50 ms into the harness's run on a's second job (one-shot: the retry works)
    script = Script([(nth("job_start", a, 2), lambda: flaky.drop_next_shell_after(0.05, matching="--prompt-tokens"))])
    result = run_study(study_file(tmp_path, [a, b, absent]), tmp_path / "study", sink=script, progress=False)

    assert (result.jobs, result.complete, result.failed) == (9, 6, [])
    assert list(result.offline) == [absent] and "Connection refused" in result.offline[absent]
    assert [(j["device"], j["reason"].split(":")[0]) for j in result.not_run] == \
        [(absent, "device offline at start")] * 3
    # the dropped attempt is kept aside, its retry is the job's result
    attempts = [json.loads(p.joinpath("run.json").read_text()) for p in (tmp_path / "study" / "attempts").iterdir()]
    assert [(m["device"], m["run_id"][-3:]) for m in attempts] == [(a, "-a1")]
    assert attempts[0]["status"] in ("incomplete", "failed")  # incomplete if the harness wrote an iteration
    frame = load_runs(tmp_path / "study")
    assert sorted(frame["device"]) == sorted([a, a, a, b, b, b]) and (frame["decode_tps"] > 0).all()
    assert (frame[frame["run_id"].str.endswith("-a2")]["device"] == a).all()
    # both phones worked at the same time: each started its first job before the other finished one
    order = [(k, f["device"]) for k, f in script.events if k in ("job_start", "job_end")]
    assert order.index(("job_start", b)) < order.index(("job_end", a))
    assert order.index(("job_start", a)) < order.index(("job_end", b))
    status = study_status(tmp_path / "study")
    assert status["by_status"] == {"complete": 6, "not run": 3}


def test_an_unplugged_phone_is_quarantined_and_its_remaining_jobs_reported_not_run(tiny_fp32, bundle, phones,
                                                                                     tmp_path):
    steady, unplugged = phones
    a, b = f"adb:{steady.serial}", f"adb:{unplugged.serial}"
    script = Script([(nth("job_end", b, 1), unplugged.stop)])  # pulled out after its first job
    result = run_study(study_file(tmp_path, [a, b], reconnect_s=1), tmp_path / "study", sink=script, progress=False)

    assert (result.jobs, result.complete) == (6, 3 + 1)
    assert list(result.quarantined) == [b] and "2 failed attempts in a row" in result.quarantined[b]
    assert [j["device"] for j in result.failed] == [b]  # the job it was on when it went away
    assert [(j["device"], j["reason"].split(":")[0]) for j in result.not_run] == [(b, "device quarantined")]
    status = study_status(tmp_path / "study")
    assert {d["spec"]: d["state"] for d in status["devices"]} == {a: "ok", b: "quarantined"}
    assert status["by_status"] == {"complete": 4, "failed": 1, "not run": 1}
    complete = load_runs(tmp_path / "study").query("status == 'complete'")
    assert sorted(complete["device"]) == sorted([a, a, a, b])


def test_require_all_refuses_to_start_with_an_offline_device_before_any_export(phones, tmp_path):
    absent = f"adb-direct:127.0.0.1:{free_port()}"
    with pytest.raises(StudyError, match=r"1 of 2 devices are offline \(adb-direct:127.0.0.1:\d+: .*drop --require-all"):
        run_study(study_file(tmp_path, [f"adb:{phones[0].serial}", absent]), tmp_path / "study", require_all=True,
                  progress=False)
    assert not (tmp_path / "study" / "artifacts").exists()

