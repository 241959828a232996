from __future__ import annotations

from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stderr, stdout

MAX_RUN_LINES = 50  # above this many runs, the table has a line per row (``analysis.summary``)


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--compare/--no-compare", default=None,
              help=f"Compare runs against the first valid one [default: on for 2 to {MAX_RUN_LINES} runs].")
@click.option("--ops", is_flag=True, help="Also show each run's op-level profile (runs benched with --profile).")
@click.option("--phase", type=click.Choice(["prefill", "decode", "forward"]), help="--ops: one phase only.")
@click.option("--top", default=20, show_default=True, help="--ops: rows per run.")
@click.option("--include-invalid", is_flag=True,
              help="Keep invalid runs (throttled, too short, unclean trace, ...) in comparisons and row statistics.")
@click.option("--by", "by", type=click.Choice(["auto", "run", "row"]), default="auto", show_default=True,
              help=f"A line per run, or per row (runs of the same model/target/device/workload/threads pooled); "
                   f"auto: per row above {MAX_RUN_LINES} runs.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one self-contained HTML page (charts inline, opens from disk) instead of tables.")
@click.option("--perfetto", "perfetto_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one run's trace as Chrome trace-event JSON for ui.perfetto.dev (PATHS: one run directory).")
@click.option("--survey", is_flag=True,
              help="The SLM survey's figures (latency vs parameters, memory split vs vocabulary, step time per "
                   "token index, KV cache by attention type); tables in text, charts with --html (docs/survey.md).")
@click.option("--per-run", default=6, show_default=True, help="--html: runs that get their own timeline (the slowest).")
@json_option
def report_cmd(paths: tuple[Path, ...], compare: bool | None, ops: bool, phase: str | None, top: int,
               include_invalid: bool, by: str, html_file: Path | None, perfetto_file: Path | None, per_run: int,
               survey: bool, as_json: bool) -> None:
    """Re-render stored runs: run directories, folders of runs, or results .duckdb files.

    Runs whose bench was killed (still `running`) are recovered first: the harness's trace is
    pulled from the device and the run marked incomplete (one line each on stderr). LLM runs
    also get a roofline table: bytes read per decode token and the share of the device's
    measured memory bandwidth it reaches (docs/roofline.md).

    Metrics show the median over measured runs with its bootstrap 95% CI, and the CV. Each run
    gets a validity verdict (docs/statistics.md); invalid runs are listed with their reasons
    and left out of comparisons unless --include-invalid. Above 50 runs the table has a line
    per row (runs of the same thing pooled) instead of a line per run.

    \b
    Example:
      slmdeploy report runs/                          # every run in the folder
      slmdeploy report runs/results.duckdb --json
      slmdeploy report runs/2026…-fp32 runs/2026…-8da4w --compare
      slmdeploy report runs/2026…-fp32 --ops --phase decode    # after bench --profile
      slmdeploy report study/ --by row --include-invalid
      slmdeploy report runs/ --html report.html               # charts, CIs; no network needed
      slmdeploy report runs/2026…-fp32 --perfetto run.json    # open in ui.perfetto.dev
      slmdeploy report studies/survey --survey --html survey.html
    """
    from slmdeploy.analysis import load_runs
    from slmdeploy.analysis.memory_table import memory_table
    from slmdeploy.analysis.roofline_table import roofline_table
    from slmdeploy.analysis.table import comparison, comparison_table, invalid_lines, ops_table, results_table
    from slmdeploy.bench.recover import recover_runs

    for path in (p for p in paths if p.is_dir()):  # runs whose bench was killed are settled first
        for r in recover_runs(path, by="report", progress=not as_json):
            stderr.print(r.describe(), highlight=False, soft_wrap=True)
    if html_file or perfetto_file:
        _write_files(paths, html_file, perfetto_file, per_run, as_json, survey)
        return
    frame = load_runs(paths)
    per_row = by == "row" or (by == "auto" and len(frame) > MAX_RUN_LINES)
    compare = 1 < len(frame) <= MAX_RUN_LINES if compare is None else compare
    if compare and len(frame) > MAX_RUN_LINES:
        stderr.print(f"no comparison: {len(frame)} runs is too many to compare one by one; "
                     "use `slmdeploy compare` on two result sets, or --by row.", highlight=False)
        compare = False
    profiles = _profiles(frame, phase) if ops else {}
    if as_json:
        from slmdeploy.analysis.jsonsafe import records
        from slmdeploy.analysis.summary import summarize_rows

        out = {"runs": records(frame), "rows": records(summarize_rows(frame, include_invalid))}
        if compare and len(frame) > 1:
            out["comparison"] = records(comparison(frame, include_invalid))
        if ops:
            out["ops"] = {run_id: records(df) for run_id, df in profiles.items()}
        if survey:
            from slmdeploy.analysis.claims import survey_claims
            from slmdeploy.analysis.jsonsafe import clean
            from slmdeploy.report.survey import survey_tables

            out["survey"] = {name: records(df) for name, df in survey_tables(frame).items()}
            out["claims"] = clean([c.to_dict() for c in survey_claims(frame)])
        emit_json(out, compact=len(frame) > MAX_RUN_LINES)  # indented JSON of 10,000 runs takes seconds
        return
    if frame.empty:
        stdout.print("no runs found")
        return
    if per_row:
        from slmdeploy.analysis.summary import summarize_rows
        from slmdeploy.analysis.table import summary_table

        rows = summarize_rows(frame, include_invalid)
        used = "all runs" if include_invalid else "valid runs only"
        stdout.print(summary_table(rows, title=f"{len(frame)} runs in {len(rows)} rows: median [95% CI] "
                                               f"over the pooled measured runs ({used})"))
    else:
        stdout.print(results_table(frame))
        if (roofline := roofline_table(frame)) is not None:
            stdout.print(roofline)
        if (memory := memory_table(frame)) is not None:
            stdout.print(memory)
    if survey:
        from slmdeploy.analysis.claims import survey_claims
        from slmdeploy.report.claims import rich_claims
        from slmdeploy.report.survey import rich_tables, survey_tables

        for table in rich_tables(survey_tables(frame)):
            stdout.print(table)
        stdout.print(rich_claims(survey_claims(frame)))
    bad = invalid_lines(frame, limit=10 if per_row else 50)
    if bad:
        n_bad = int((~frame["valid"].astype(bool)).sum())
        stdout.print(f"[bold]{n_bad} invalid run{'s' if n_bad > 1 else ''}[/] "
                     f"({'kept in' if include_invalid else 'left out of'} comparisons):", highlight=False)
        for line in bad:
            stdout.print(f"  {line}", highlight=False, soft_wrap=True, markup=False)
    if compare and len(frame) > 1:
        if len(comparison(frame, include_invalid)) > 1:
            stdout.print(comparison_table(frame, include_invalid))
        else:
            stdout.print("no comparison: fewer than 2 valid runs (--include-invalid compares them all)")
    for run_id, df in profiles.items():
        stdout.print(ops_table(df, title=f"ops of {run_id}" + (f" ({phase})" if phase else ""), top=top))


def _profiles(frame, phase: str | None) -> dict:
    """run_id -> op breakdown, for the runs that recorded a profile (an error when none did)."""
    from slmdeploy.analysis.ops import has_profile, run_ops
    from slmdeploy.errors import SlmdeployError

    dirs = {r["run_id"]: Path(r["run_dir"]) for r in frame.to_dict("records") if r.get("run_dir")}
    profiles = {run_id: run_ops(d, phase) for run_id, d in dirs.items() if has_profile(d)}
    if not profiles:
        raise SlmdeployError("none of these runs has an op-level profile; bench with --profile to record one.")
    return profiles


def _write_files(paths: tuple[Path, ...], html_file: Path | None, perfetto_file: Path | None, per_run: int,
                 as_json: bool, survey: bool = False) -> None:
    """--html / --perfetto: write the files, one line each (or one JSON object)."""
    from slmdeploy.errors import SlmdeployError

    out: dict = {}
    if perfetto_file:
        from slmdeploy.analysis.records import is_run_dir
        from slmdeploy.report.perfetto import write_perfetto

        if len(paths) != 1 or not is_run_dir(paths[0]):
            raise SlmdeployError("--perfetto takes exactly one run directory (the folder with run.json and trace.jsonl).")
        res = write_perfetto(paths[0], perfetto_file)
        out["perfetto"] = {"path": str(res.path), "slices": res.slices, "op_slices": res.op_slices,
                           "counters": res.counters, "note": res.note}
        if not as_json:
            stderr.print(f"wrote {res.path}: {res.slices} slices, {res.op_slices} op slices, {res.counters} counter "
                         "samples; open it in https://ui.perfetto.dev", highlight=False, soft_wrap=True)
            if res.note:
                stderr.print(f"note: {res.note}", highlight=False, soft_wrap=True)
    if html_file:
        from slmdeploy.report.page import as_dict, html_report

        report = html_report(list(paths), html_file, per_run=per_run, survey=survey)
        out["html"] = as_dict(report)
        if not as_json:
            stderr.print(f"wrote {report.path}: {report.runs} run(s) in {report.rows} configuration(s), "
                         f"{len(report.charts)} charts, {report.bytes / 1024:.0f} KiB", highlight=False, soft_wrap=True)
            if report.per_run_note:
                stderr.print(report.per_run_note, highlight=False, soft_wrap=True)
    if as_json:
        emit_json(out)
