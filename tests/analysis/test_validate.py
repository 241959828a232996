"""Traces are untrusted input (analysis/validate.py): each kind of damage is named with its file and
line, left out of the numbers, and flags the run; random damage never crashes the analysis nor
gives a negative or non-finite number."""

from __future__ import annotations

import io
import json
import math
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from slmdeploy.analysis.jsonsafe import records
from slmdeploy.analysis.records import record
from slmdeploy.analysis.synthetic import trace_events, write_run
from slmdeploy.analysis.table import results_table
from slmdeploy.analysis.validate import check_trace
from slmdeploy.analysis.validity import apply


# trace_events() line numbers: 1 header, 2 load, 3/4 warm-up prefill/decode, 5/6 run 0, ... 13/14 run 4, 15 footer
RUN0_PREFILL, RUN0_DECODE, FOOTER = 5, 6, 15


def _lines(**kwargs) -> list[str]:
    return [json.dumps(e) for e in trace_events(**kwargs)]


def _edit(line: int, **fields) -> list[str]:
    lines = _lines()
    event = json.loads(lines[line - 1])
    event.update(fields)
    lines[line - 1] = json.dumps(event)
    return lines


def _replace(line: int, text: str) -> list[str]:
    lines = _lines()
    lines[line - 1] = text
    return lines


def test_a_good_trace_is_clean(tmp_path):
    run = write_run(tmp_path, "good")
    checked = check_trace(run / "trace.jsonl")
    assert checked.clean and checked.skipped_lines == 0 and len(checked.trace.events) == 15
    row = record(run)
    assert row["valid"] and row["invalid_reasons"] == "" and row["trace_problem"] is None
    assert row["measured_runs"] == 5 and row["decode_tps_n"] == 5


BAD_TRACES = {
    "not an object": (_replace(RUN0_PREFILL, "[1, 2]"), "trace.jsonl:5: not a JSON object (list), skipped"),
    "torn line": (_replace(RUN0_PREFILL, '{"type": "itera'), "trace.jsonl:5: not a JSON line (torn or corrupt), skipped"),
    "ns a string": (_edit(RUN0_PREFILL, ns="40000000"), 'trace.jsonl:5: iteration ns is not a number ("40000000"), skipped'),
    "ns negative": (_edit(RUN0_PREFILL, ns=-5), "trace.jsonl:5: iteration ns is negative (-5), skipped"),
    "ns NaN": (_replace(RUN0_PREFILL, _lines()[RUN0_PREFILL - 1].replace('"ns": 40000000', '"ns": NaN')),
               "trace.jsonl:5: iteration ns is not finite (nan), skipped"),
    "ns infinite": (_replace(RUN0_PREFILL, _lines()[RUN0_PREFILL - 1].replace('"ns": 40000000', '"ns": 1e400')),
                    "trace.jsonl:5: iteration ns is not finite (inf), skipped"),
    "ns zero": (_edit(RUN0_DECODE, ns=0), "trace.jsonl:6: iteration ns is zero, skipped"),
    "tokens negative": (_edit(RUN0_PREFILL, tokens=-16), "trace.jsonl:5: iteration tokens is negative (-16), skipped"),
    "tokens a float": (_edit(RUN0_PREFILL, tokens=1.5), "trace.jsonl:5: iteration tokens is not an integer (1.5), skipped"),
    "step negative": (_edit(RUN0_DECODE, step_ns=[30_000_000] * 7 + [-1]),
                      "trace.jsonl:6: iteration step_ns entry is negative (-1), skipped"),
    "run a list": (_edit(RUN0_PREFILL, run=[0]), "trace.jsonl:5: iteration run is not a non-negative integer ([0]), skipped"),
    "unknown phase": (_edit(RUN0_PREFILL, phase="train"),
                      'trace.jsonl:5: iteration phase is "train", not one of prefill, decode, forward, skipped'),
    "no type": (_replace(RUN0_PREFILL, '{"ns": 5}'), "trace.jsonl:5: event type is missing or not a string (null), skipped"),
    "memory absurd": (_edit(RUN0_PREFILL, hwm_kib=1 << 41),
                      f"trace.jsonl:5: iteration hwm_kib is absurd ({1 << 41} KiB > 1 TiB)"),
    "memory negative": (_edit(RUN0_DECODE, rss_kib=-1), "trace.jsonl:6: iteration rss_kib is negative (-1)"),
    "event after the footer": (_lines() + [_lines()[RUN0_PREFILL - 1]],
                               "trace.jsonl:16: iteration event after the footer (line 15), skipped"),
    "no header": (_lines()[1:], "trace.jsonl:1: no header before this load event: the trace's protocol is unknown, "
                                "so none of it is read"),
    "unknown protocol": (_edit(1, protocol="slmdeploy.trace/2"),
                         'trace.jsonl:1: unknown protocol "slmdeploy.trace/2" (this slmdeploy reads slmdeploy.trace/1); '
                         "none of the trace is read: upgrade slmdeploy"),
    "header without protocol": (_edit(1, protocol=None), "trace.jsonl:1: unknown protocol null"),
    "telemetry wrong type": (_lines()[:1] + ['{"type": "telemetry", "cpu_khz": "fast"}'] + _lines()[1:],
                             'trace.jsonl:2: telemetry cpu_khz is not a map ("fast")'),
}


@pytest.mark.parametrize("case", list(BAD_TRACES))
def test_each_kind_of_damage_is_named_by_file_and_line_and_flags_the_run(case, tmp_path):
    lines, expected = BAD_TRACES[case]
    run = write_run(tmp_path, "bad", lines=lines)
    checked = check_trace(run / "trace.jsonl")
    assert str(checked.problems[0]).startswith(expected), checked.problems
    row = record(run)
    assert row["valid"] is False and row["invalid_reasons"].startswith(expected)
    _assert_sane(row)


@pytest.mark.parametrize("case", ["ns negative", "ns a string", "ns NaN", "tokens negative", "step negative"])
def test_a_bad_iteration_is_left_out_of_the_numbers(case, tmp_path):
    row = record(write_run(tmp_path, "bad", lines=BAD_TRACES[case][0]))
    good = record(write_run(tmp_path, "good"))
    assert row["trace_skipped_lines"] == 1
    dropped = "prefill_tps" if case in ("ns negative", "ns a string", "ns NaN", "tokens negative") else "decode_tps"
    assert row[f"{dropped}_n"] == 4 and good[f"{dropped}_n"] == 5


def test_an_absurd_memory_value_drops_only_that_field(tmp_path):
    row = record(write_run(tmp_path, "bad", lines=BAD_TRACES["memory absurd"][0]))
    assert row["trace_skipped_lines"] == 0 and row["prefill_tps_n"] == 5  # the timing stays
    assert row["peak_rss_mib"] == pytest.approx((121_000 + 5) / 1024)  # the largest sane hwm_kib


@pytest.mark.parametrize("case", ["no header", "unknown protocol"])
def test_a_trace_of_unknown_format_gives_no_numbers(case, tmp_path):
    row = record(write_run(tmp_path, "bad", lines=BAD_TRACES[case][0]))
    assert row["measured_runs"] == 0 and row.get("decode_tps") is None and "decode_tps_median" not in row
    assert not row["valid"]


def test_a_gen_0_trace_has_no_decode_numbers_and_reports(tmp_path):
    """bench -g 0: prefill only; no decode column may be made up (nor crash the report)."""
    row = record(write_run(tmp_path, "g0", events=trace_events(gen=0)))
    assert row["gen_tokens"] is None and row["decode_tps"] is None and row["prefill_tps_n"] == 5
    assert row["trace_problem"] is None


def _assert_sane(row: dict) -> None:
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        assert math.isfinite(value), (key, value)
        if key != "thermal_max_temp_c":  # a thermal zone may read below 0 °C
            assert value >= 0, (key, value)
    for name, values in json.loads(row["samples"]).items():
        assert all(math.isfinite(v) and v >= 0 for v in values), (name, values)


# --- property test: random damage never crashes the analysis nor gives an impossible number ---

FIELDS = ["type", "ns", "tokens", "run", "warmup", "phase", "step_ns", "hwm_kib", "rss_kib", "pss_kib", "protocol",
          "status", "threads", "t_ns", "cpu_khz", "cpu_max_khz", "thermal_mc", "message", "harness", "runtime"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
TELEMETRY = [{"cpu_khz": {"cpu0": 2_000_000}, "cpu_max_khz": {"cpu0": 2_000_000}, "thermal_mc": {"cpu": 40_000}},
             {"cpu_khz": {"cpu0": 1_500_000}, "cpu_max_khz": {"cpu0": 2_000_000}, "thermal_mc": {"cpu": 43_000}}]


@st.composite
def damaged_traces(draw) -> list[str]:
    lines = [json.dumps(e) for e in trace_events(telemetry=TELEMETRY, gen=draw(st.sampled_from([0, 8])))]
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["field", "field", "field", "garbage", "json", "delete", "duplicate", "truncate"]))
        if action == "field":
            try:
                event = json.loads(lines[at])
            except ValueError:  # an earlier action broke this line
                continue
            if isinstance(event, dict):
                event[draw(st.sampled_from(FIELDS))] = draw(json_values)
                lines[at] = json.dumps(event)  # NaN/Infinity written as bare literals, as a broken writer would
        elif action == "garbage":
            lines.insert(at, draw(st.text(max_size=30)).replace("\n", " "))
        elif action == "json":
            lines.insert(at, json.dumps(draw(json_values)))
        elif action == "delete" and len(lines) > 1:
            del lines[at]
        elif action == "duplicate":
            lines.insert(draw(st.integers(0, len(lines))), lines[at])
        elif action == "truncate":
            lines[at] = lines[at][: draw(st.integers(0, len(lines[at])))]
    return lines


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_traces())
def test_damaged_traces_never_crash_nor_give_impossible_numbers(lines):
    with tempfile.TemporaryDirectory() as tmp:
        run = write_run(Path(tmp), "fuzz", lines=lines)
        row = record(run)
        _assert_sane(row)
        if not check_trace(run / "trace.jsonl").clean:
            assert row["valid"] is False and row["invalid_reasons"]
        json.dumps(records(apply(pd.DataFrame([row]))), allow_nan=False)  # strict JSON whatever the trace held


run_json_values = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["run_id", "status", "started_at", "model", "delegates", "workload", "threads",
                                     "strays_killed", "cooldown", "device", "device_model", "quant", "params",
                                     "model_size", "accelerator", "ttft_ms_median", "decode_tps_median"]),
                    json_values, max_size=6),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_json_values)
def test_any_run_json_gives_a_record_never_a_crash(meta):
    with tempfile.TemporaryDirectory() as tmp:
        run = write_run(Path(tmp), "meta")
        (run / "run.json").write_text(json.dumps(meta))
        row = record(run)
        assert isinstance(row["valid"], bool) and isinstance(row["run_id"], str)
        if not isinstance(meta, dict):
            assert row["valid"] is False and row["invalid_reasons"].startswith("run.json:1: not a JSON object")
        frame = apply(pd.DataFrame([row]))
        json.dumps(records(frame), allow_nan=False, default=str)
        Console(file=io.StringIO(), width=200).print(results_table(frame))  # the text report renders too
