"""bench's attempts (bench/api.py): an honest run.json between retries, strays killed before
every retry, an earlier attempt's measurements never called "failed", pulls with a progress bar.

Where a test needs an attempt to end a given way, the harness run (``_run_once``) is replaced;
the artifact is the session's llama-tiny, the device this host.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from slmdeploy.bench import api
from slmdeploy.bench.rundir import RunDir
from slmdeploy.devices import deploy
from slmdeploy.devices.local import LocalDevice
from slmdeploy.errors import DeviceError, HarnessError

PARTIAL = '{"type":"header","run_id":"x"}\n{"type":"iteration","index":0}\n'


def _run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


class Script:
    """Stands in for ``_run_once``: attempt N writes a partial trace (it measured something),
    then runs ``steps[N-1](run_dir)``; records run.json as each attempt found it."""

    def __init__(self, *steps) -> None:
        self.steps = list(steps)
        self.seen: list[dict] = []
        self.strays_killed_before: list[int] = []

    def run_once(self, device, rd, command, args, timeout, etdump, progress=False) -> int:
        self.seen.append(_run_json(rd.path))
        (rd.path / "trace.jsonl").write_text(PARTIAL)
        return self.steps.pop(0)(rd.path)

    def kill_strays(self, device) -> None:
        self.strays_killed_before.append(len(self.seen) + 1)

    def bench(self, monkeypatch, tmp_path: Path, artifact, retries: int):
        monkeypatch.setattr(api, "_run_once", self.run_once)
        monkeypatch.setattr(api, "kill_strays_quietly", self.kill_strays)
        return api.bench(artifact, LocalDevice(tmp_path / "dev"), runs_dir=tmp_path / "runs", retries=retries,
                         progress=False)


def harness_exit_1(run_dir: Path) -> int:
    return 1


def link_lost(run_dir: Path) -> int:
    raise DeviceError("link lost")


def finished_then_link_lost(run_dir: Path) -> int:
    """The harness finished on the device (footer written); the link died before its exit code came back."""
    (run_dir / "trace.jsonl").write_text(PARTIAL + '{"type":"footer","status":"complete","runs":1}\n')
    raise DeviceError("link lost")


def host_crash(run_dir: Path) -> int:
    """The retry dies on this host before its harness wrote anything."""
    (run_dir / "trace.jsonl").unlink()
    raise RuntimeError("host side crashed")


def _only_run(tmp_path: Path) -> Path:
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    return run_dir


def test_a_retried_attempt_finds_the_run_marked_incomplete(monkeypatch, tmp_path, tiny_fp32):
    script = Script(harness_exit_1, link_lost)
    with pytest.raises(HarnessError, match="incomplete: link lost"):
        script.bench(monkeypatch, tmp_path, tiny_fp32, retries=1)
    first, second = script.seen
    assert first["status"] == "running"
    assert second["status"] == "incomplete" and second["attempts"] == 1  # what a kill during the retry leaves
    assert "attempt 1 of 2 failed" in second["error"]
    assert script.strays_killed_before == [2]  # after a plain harness failure too, not only a lost link
    run_dir = _only_run(tmp_path)
    meta = _run_json(run_dir)
    assert meta["status"] == "incomplete" and meta["attempts"] == 2 and meta["error"] == "link lost"
    assert (run_dir / "trace.attempt1.jsonl").read_text() == PARTIAL


def test_a_run_that_finished_while_the_link_was_down_is_kept_complete(monkeypatch, tmp_path, tiny_fp32):
    script = Script(finished_then_link_lost)
    result = script.bench(monkeypatch, tmp_path, tiny_fp32, retries=1)
    meta = _run_json(result.run_dir)
    assert result.status == "complete" and len(script.seen) == 1  # not run again
    assert meta["status"] == "complete" and meta["link_lost"] == "link lost" and meta["harness_exit_code"] is None


def test_an_exception_after_a_kept_attempt_leaves_the_run_incomplete(monkeypatch, tmp_path, tiny_fp32):
    script = Script(harness_exit_1, host_crash)
    with pytest.raises(RuntimeError, match="host side crashed"):
        script.bench(monkeypatch, tmp_path, tiny_fp32, retries=2)
    run_dir = _only_run(tmp_path)
    meta = _run_json(run_dir)
    assert not (run_dir / "trace.jsonl").exists() and (run_dir / "trace.attempt1.jsonl").exists()
    assert meta["status"] == "incomplete" and meta["error"] == "host side crashed"  # measurements kept: not "failed"


class _Bar:
    def add_task(self, *args, **kwargs) -> int:
        return 0

    def advance(self, *args, **kwargs) -> None:
        pass


class _Args:
    def argv(self) -> list[str]:
        return []


def test_pulls_after_a_run_show_progress_when_progress_is_on(monkeypatch, tmp_path):
    shown: list[bool] = []

    @contextlib.contextmanager
    def bars(enabled: bool = True):
        shown.append(enabled)
        yield _Bar()

    monkeypatch.setattr(deploy, "transfer_progress", bars)
    rd = RunDir.create(tmp_path / "runs", "art", "local")
    api._run_once(LocalDevice(tmp_path / "dev"), rd, ["sh", "-c", "echo '{}' > trace.jsonl"], _Args(), 30, False,
                  progress=True)
    assert shown and all(shown)
    assert (rd.path / "trace.jsonl").exists()
