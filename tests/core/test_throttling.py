"""Throttling verdicts from telemetry: a lowered frequency cap is the evidence; idle-core dips are not."""

from __future__ import annotations

import json
from pathlib import Path

from slmdeploy.analysis.metrics import throttling
from slmdeploy.harness.trace import read_trace


def _trace(tmp_path: Path, samples: list[dict]) -> Path:
    path = tmp_path / "trace.jsonl"
    lines = [{"type": "header", "t_ns": 0}] + [{"type": "telemetry", "t_ns": i + 1, **s} for i, s in enumerate(samples)]
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    return path


def _sample(cur: dict[str, int], cap: dict[str, int] | None, temp_mc: int) -> dict:
    sample = {"thermal_mc": {"cpu-big": temp_mc}, "cpu_khz": cur, "battery": {}}
    if cap is not None:
        sample["cpu_max_khz"] = cap
    return sample


def test_a_lowered_cap_is_throttling_even_while_the_core_is_idle(tmp_path):
    cap = {"cpu0": 2000000, "cpu7": 3000000}
    samples = [_sample({"cpu0": 500000, "cpu7": 3000000}, cap, 40000),
               _sample({"cpu0": 1200000, "cpu7": 2400000}, {"cpu0": 2000000, "cpu7": 2400000}, 41000)]
    verdict = throttling(read_trace(_trace(tmp_path, samples)))
    assert verdict["throttled"] is True and verdict["freq_cap_ratio"] == 0.8
    assert verdict["min_freq_ratio"] == 0.8 and verdict["temp_rise_c"] == 1.0


def test_a_governor_dip_under_an_unchanged_cap_is_not_throttling(tmp_path):
    """A busy core that goes idle drops far below its first sample while the phone warms: not throttled."""
    cap = {"cpu0": 2000000}
    samples = [_sample({"cpu0": 2000000}, cap, 40000), _sample({"cpu0": 300000}, cap, 45000)]
    verdict = throttling(read_trace(_trace(tmp_path, samples)))
    assert verdict["throttled"] is False and verdict["freq_cap_ratio"] == 1.0 and verdict["min_freq_ratio"] == 0.15


def test_traces_without_caps_fall_back_to_frequency_and_temperature(tmp_path):
    hot = [_sample({"cpu0": 2000000}, None, 40000), _sample({"cpu0": 1000000}, None, 43000)]
    warm = [_sample({"cpu0": 2000000}, None, 40000), _sample({"cpu0": 1000000}, None, 41000)]
    assert throttling(read_trace(_trace(tmp_path, hot)))["throttled"] is True
    assert throttling(read_trace(_trace(tmp_path, warm)))["throttled"] is False
    assert throttling(read_trace(_trace(tmp_path, hot[:1])))["throttled"] is None  # one sample tells nothing
