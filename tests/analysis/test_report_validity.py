"""`slmdeploy report` with untrusted and unusual input: a bad run.json, a -g 0 run, damaged traces,
strict JSON, validity shown and honoured, and many runs summarised by row."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from slmdeploy.analysis.synthetic import trace_events, write_run
from slmdeploy.cli.main import cli


def _report(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["report", *map(str, args)])
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit), \
        result.output
    return result.exit_code, result.stdout, result.stderr


def _strict(text: str):
    """json.loads that refuses NaN/Infinity, as jq and browsers do."""
    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON output")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", started_at="2026-12-01T10:00:01")
    write_run(root, "b", started_at="2026-12-01T10:00:02", step_ns=25_000_000)
    bad = root / "broken"
    bad.mkdir()
    (bad / "run.json").write_text('{"run_id": "broken", "status": ')
    listed = root / "listed"
    listed.mkdir()
    (listed / "run.json").write_text("[1, 2, 3]")
    write_run(root, "gen0", started_at="2026-12-01T10:00:03", events=trace_events(gen=0, prefill_ns=300_000_000))
    lines = [json.dumps(e) for e in trace_events()]
    lines[4] = lines[4].replace('"ns": 40000000', '"ns": -5')
    write_run(root, "negative", started_at="2026-12-01T10:00:04", lines=lines)
    return root


def test_bad_runs_are_flagged_and_the_rest_reported(folder):
    code, out, _ = _report(folder, "--json")
    assert code == 0
    data = _strict(out)
    runs = {r["run_id"]: r for r in data["runs"]}
    assert set(runs) == {"a", "b", "broken", "listed", "gen0", "negative"}
    assert runs["a"]["valid"] and runs["b"]["valid"] and runs["gen0"]["valid"]
    assert runs["broken"]["valid"] is False and runs["broken"]["invalid_reasons"].startswith("run.json:1: not JSON")
    assert runs["listed"]["invalid_reasons"] == "run.json:1: not a JSON object (list)"
    assert runs["negative"]["invalid_reasons"] == "trace.jsonl:5: iteration ns is negative (-5), skipped"
    assert runs["negative"]["trace_skipped_lines"] == 1 and runs["negative"]["prefill_tps_n"] == 4
    assert runs["gen0"]["decode_tps"] is None and runs["gen0"]["gen_tokens"] is None  # null, not NaN
    # the comparison leaves the invalid runs out: a is the baseline, b the only other
    assert [c["run_id"] for c in data["comparison"]] == ["a", "b", "gen0"]
    assert data["comparison"][1]["decode_tps_delta_pct"] == pytest.approx(20.0, abs=1.0)  # 30 -> 25 ms a step


def test_the_text_report_shows_validity_and_reasons(folder):
    code, out, _ = _report(folder)
    assert code == 0
    assert "pp16+tg0" in out  # the -g 0 run (NaN gen tokens used to crash the table)
    assert "3 invalid runs (left out of comparisons):" in out
    assert "negative: trace.jsonl:5: iteration ns is negative (-5), skipped" in out
    assert "broken: run.json:1: not JSON" in out
    assert "400.0 [384.6, 416.7]" in out  # run a's prefill tok/s: median [95% CI]


def test_include_invalid_keeps_them_in_the_comparison(folder):
    _, out, _ = _report(folder, "--json", "--include-invalid")
    data = _strict(out)
    assert [c["run_id"] for c in data["comparison"]] == ["a", "b", "gen0", "negative", "broken", "listed"]
    assert data["rows"][0]["used_runs"] == data["rows"][0]["runs"]


def test_no_valid_pair_means_no_comparison(tmp_path):
    write_run(tmp_path, "s1", runs=2)
    write_run(tmp_path, "s2", runs=2)
    code, out, _ = _report(tmp_path)
    assert code == 0 and "no comparison: fewer than 2 valid runs" in out


def test_many_runs_are_summarised_by_row(tmp_path):
    for i in range(60):
        write_run(tmp_path, f"r{i:02d}", started_at=f"2026-12-01T10:{i:02d}:00",
                  meta={"quant": "fp32", "target": "host-xnnpack"} if i % 2 else  # a target implies its quant
                  {"quant": "8da4w", "target": "host-xnnpack-8da4w"}, step_ns=30_000_000 + 1000 * i)
    code, out, err = _report(tmp_path)
    assert code == 0
    assert "60 runs in 2 rows" in out and "comparison" not in out
    assert out.count("llama-tiny") == 2  # a line per row, not per run
    _, _, err = _report(tmp_path, "--compare")
    assert "no comparison: 60 runs is too many to compare one by one" in err
    _, per_run, _ = _report(tmp_path, "--by", "run", "--no-compare")
    assert per_run.count("llama-tiny") == 60
    _, as_json, _ = _report(tmp_path, "--json")
    data = _strict(as_json)
    assert len(data["runs"]) == 60 and len(data["rows"]) == 2 and "comparison" not in data
    assert sorted(r["decode_tps_n"] for r in data["rows"]) == [150, 150]


def test_report_after_a_real_gen_0_bench(tiny_fp32, tmp_path):
    """bench -g 0 on this host (prefill only): report's table and JSON hold no made-up decode number."""
    from slmdeploy.bench import Workload, bench

    bench(tiny_fp32, "local", workload=Workload(prompt_tokens=8, gen_tokens=0, warmup=0, runs=3, telemetry_interval_ms=0),
          runs_dir=tmp_path, progress=False)
    for where in (tmp_path, tmp_path / "results.duckdb"):
        code, out, _ = _report(where)
        assert code == 0 and "pp8+tg0" in out
        _, as_json, _ = _report(where, "--json")
        (run,) = _strict(as_json)["runs"]
        assert run["decode_tps"] is None and run["gen_tokens"] is None and run.get("decode_tps_median") is None
        assert run["prefill_tps_n"] == 3 and run["prefill_tps_median"] > 0 and run["trace_problem"] is None
