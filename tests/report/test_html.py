"""--html: one self-contained page; its numbers, its limits at scale, and what a browser sees."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from slmdeploy.analysis import load_runs
from slmdeploy.analysis.summary import bootstrap
from slmdeploy.cli.main import cli
from slmdeploy.errors import SlmdeployError
from slmdeploy.report import html_report
from slmdeploy.report.data import page_rows, row_labels

from .browser import open_report


@pytest.fixture(scope="module")
def page(synthetic_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    return html_report(synthetic_runs, out, per_run=4)


def test_rows_pool_the_per_run_samples_of_a_configuration(synthetic_runs):
    frame = load_runs(synthetic_runs)
    rows = page_rows(frame)
    assert len(frame) == 60 and len(rows) == 48 and rows["runs"].sum() == 60
    twice = rows[rows["runs"] == 2].iloc[0]
    runs = frame[frame["run_id"].isin(twice["run_ids"])]
    pooled = [v for s in runs["samples"] for v in json.loads(s)["decode_tps"]]
    assert len(pooled) == 6  # 2 runs x 3 measured repetitions
    want = bootstrap([np.array(pooled)]).iloc[0]  # the rows are summarize_rows': exact bootstrap of the median
    assert (twice["decode_tps_median"], twice["decode_tps_ci_lo"], twice["decode_tps_ci_hi"]) == pytest.approx(
        (want["median"], want.ci_lo, want.ci_hi))
    assert twice["used_runs"] == 2 and twice["model_size"] == runs["model_size"].iloc[0]  # invalid runs are shown too
    assert list(rows["label"]) == row_labels(rows) and rows["label"].nunique() == 48
    assert "valid" not in page_rows(frame.drop(columns=["valid", "invalid_reasons"]))  # only with a verdict


def test_page_holds_the_summary_charts_and_says_which_runs_it_charted(page):
    text = page.path.read_text()
    assert page.runs == 60 and page.rows == 48
    assert page.charts == ["metrics", "size", "timeline-0", "timeline-1", "timeline-2", "timeline-3", "memory"]
    assert "the 4 slowest of 60 runs" in page.per_run_note and page.per_run_note in text
    assert text.count("<svg") == len(page.charts)
    assert not re.search(r"<script|<link|https?://(?!www\.w3\.org)", text)  # nothing to fetch, no code to run
    assert len(re.findall(r"<tr><td", text)) == 48
    assert page.bytes == len(text.encode()) < 2_000_000


def test_validity_is_shown_when_runs_carry_it(synthetic_runs, tmp_path):
    frame = load_runs(synthetic_runs)
    frame["valid"] = True
    frame["invalid_reasons"] = ""
    bad = frame["model"].eq("gemma3-1b") & frame["quant"].eq("fp32")
    frame.loc[bad, "valid"] = False
    frame.loc[bad, "invalid_reasons"] = "thermal throttling"
    report = html_report(synthetic_runs, tmp_path / "v.html", frame=frame)
    text = report.path.read_text()
    assert text.count("class='l ok'>valid<") == 44
    assert text.count("invalid: thermal throttling") == 4  # gemma3-1b fp32 on 4 devices


def test_cli_writes_html_and_perfetto(synthetic_runs, tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["report", str(synthetic_runs), "--html", str(tmp_path / "r.html"), "--per-run", "2",
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)["html"]
    assert out["runs"] == 60 and out["charts"][2:4] == ["timeline-0", "timeline-1"] and (tmp_path / "r.html").is_file()
    run_dir = sorted(synthetic_runs.iterdir())[0]
    res = runner.invoke(cli, ["report", str(run_dir), "--perfetto", str(tmp_path / "t.json")])
    assert res.exit_code == 0 and "ui.perfetto.dev" in res.output
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    res = runner.invoke(cli, ["report", str(synthetic_runs), "--perfetto", str(tmp_path / "t.json")])
    assert res.exit_code == 2 and "exactly one run directory" in res.output and "Traceback" not in res.output


def test_no_runs_is_one_clear_error(tmp_path):
    with pytest.raises(SlmdeployError, match="no runs found"):
        html_report(tmp_path, tmp_path / "x.html", frame=pd.DataFrame())


def test_browser_opens_it_offline_with_every_chart_drawn(page, tmp_path):
    seen = open_report(page.path, tmp_path / "report.png")
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.requests == [page.path.resolve().as_uri()]  # the file itself, nothing else
    assert [c["id"] for c in seen.charts] == page.charts
    for chart in seen.charts:
        assert chart["drawn"] > 0 and chart["width"] > 300 and chart["height"] > 100, chart
    metrics = next(c for c in seen.charts if c["id"] == "metrics")
    assert metrics["marks"] >= 48 * 3  # a bar per configuration in each of prefill, decode, TTFT
    assert seen.summary_rows == 48
    png = seen.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 100_000


def test_a_forward_workload_gets_forward_charts(tmp_path):
    run_dir = tmp_path / "runs" / "fwd"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "fwd", "model": "mobilenet", "device": "local",
                                                  "status": "complete", "started_at": "2026-01-01T00:00:00+00:00",
                                                  "workload": {"iterations": 2}}))
    events = [{"type": "header", "t_ns": 0, "protocol": "slmdeploy.trace/1"},
              {"type": "load", "t_ns": 2_000_000, "ns": 1_500_000, "rss_kib": 10_240}]
    for run in range(4):
        events.append({"type": "iteration", "t_ns": 3_000_000 * (run + 1), "run": run, "warmup": False,
                       "phase": "forward", "tokens": 0, "ns": 500_000 + run, "step_ns": [200_000, 300_000 + run],
                       "rss_kib": 11_264, "hwm_kib": 11_300})
    events.append({"type": "footer", "t_ns": 13_000_000, "status": "complete"})
    (run_dir / "trace.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    report = html_report(tmp_path / "runs", tmp_path / "fwd.html")
    assert report.charts == ["metrics", "timeline-0", "memory"]
    text = report.path.read_text()
    assert "forward ms" in text and "forward step (ms)" in text
    assert "0.250 <span class=\"ci\">" in text.replace("'", '"')  # median of 0.25 ms forward times over 4 runs


def test_a_results_database_gives_the_same_page(synthetic_runs, page, tmp_path):
    from slmdeploy.analysis.store import store_runs

    db = tmp_path / "results.duckdb"
    store_runs(sorted(p for p in synthetic_runs.iterdir() if p.is_dir()), db)
    report = html_report(db, tmp_path / "db.html", per_run=4)
    assert (report.runs, report.rows, report.charts, report.per_run_note) == (
        page.runs, page.rows, page.charts, page.per_run_note)
    table = lambda p: re.search(r"<table id='summary'>.*?</table>", p.read_text(), re.S).group(0)  # noqa: E731
    assert table(report.path) == table(page.path)  # same rows, medians and CIs
