from __future__ import annotations

from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stderr, stdout


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--compare/--no-compare", default=None, help="Compare runs against the first [default: on for 2+ runs].")
@click.option("--ops", is_flag=True, help="Also show each run's op-level profile (runs benched with --profile).")
@click.option("--phase", type=click.Choice(["prefill", "decode", "forward"]), help="--ops: one phase only.")
@click.option("--top", default=20, show_default=True, help="--ops: rows per run.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one self-contained HTML page (charts inline, opens from disk) instead of tables.")
@click.option("--perfetto", "perfetto_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write one run's trace as Chrome trace-event JSON for ui.perfetto.dev (PATHS: one run directory).")
@click.option("--per-run", default=6, show_default=True, help="--html: runs that get their own timeline (the slowest).")
@json_option
def report_cmd(paths: tuple[Path, ...], compare: bool | None, ops: bool, phase: str | None, top: int,
               html_file: Path | None, perfetto_file: Path | None, per_run: int, as_json: bool) -> None:
    """Re-render stored runs: run directories, folders of runs, or results .duckdb files.

    Runs whose bench was killed (still `running`) are recovered first: the harness's trace is
    pulled from the device and the run marked incomplete (one line each on stderr). LLM runs
    also get a roofline table: bytes read per decode token and the share of the device's
    measured memory bandwidth it reaches (docs/roofline.md).

    \b
    Example:
      slmdeploy report runs/                          # every run in the folder
      slmdeploy report runs/results.duckdb --json
      slmdeploy report runs/2026…-fp32 runs/2026…-8da4w --compare
      slmdeploy report runs/2026…-fp32 --ops --phase decode    # after bench --profile
      slmdeploy report runs/ --html report.html               # charts, CIs; no network needed
      slmdeploy report runs/2026…-fp32 --perfetto run.json    # open in ui.perfetto.dev
    """
    from slmdeploy.analysis import load_runs
    from slmdeploy.analysis.roofline_table import roofline_table
    from slmdeploy.analysis.table import comparison, comparison_table, ops_table, results_table
    from slmdeploy.bench.recover import recover_runs

    for path in (p for p in paths if p.is_dir()):  # runs whose bench was killed are settled first
        for r in recover_runs(path, by="report", progress=not as_json):
            stderr.print(r.describe(), highlight=False, soft_wrap=True)
    if html_file or perfetto_file:
        _write_files(paths, html_file, perfetto_file, per_run, as_json)
        return
    frame = load_runs(paths)
    compare = len(frame) > 1 if compare is None else compare
    profiles = _profiles(frame, phase) if ops else {}
    if as_json:
        out = {"runs": frame.to_dict("records")}
        if compare and len(frame) > 1:
            out["comparison"] = comparison(frame).to_dict("records")
        if ops:
            out["ops"] = {run_id: df.to_dict("records") for run_id, df in profiles.items()}
        emit_json(out)
        return
    if frame.empty:
        stdout.print("no runs found")
        return
    stdout.print(results_table(frame))
    if (roofline := roofline_table(frame)) is not None:
        stdout.print(roofline)
    if compare and len(frame) > 1:
        stdout.print(comparison_table(frame))
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
                 as_json: bool) -> None:
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

        report = html_report(list(paths), html_file, per_run=per_run)
        out["html"] = as_dict(report)
        if not as_json:
            stderr.print(f"wrote {report.path}: {report.runs} run(s) in {report.rows} configuration(s), "
                         f"{len(report.charts)} charts, {report.bytes / 1024:.0f} KiB", highlight=False, soft_wrap=True)
            if report.per_run_note:
                stderr.print(report.per_run_note, highlight=False, soft_wrap=True)
    if as_json:
        emit_json(out)
