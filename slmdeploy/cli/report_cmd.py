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
@json_option
def report_cmd(paths: tuple[Path, ...], compare: bool | None, ops: bool, phase: str | None, top: int,
               as_json: bool) -> None:
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
    """
    from slmdeploy.analysis import load_runs
    from slmdeploy.analysis.roofline_table import roofline_table
    from slmdeploy.analysis.table import comparison, comparison_table, ops_table, results_table
    from slmdeploy.bench.recover import recover_runs

    for path in (p for p in paths if p.is_dir()):  # runs whose bench was killed are settled first
        for r in recover_runs(path, by="report", progress=not as_json):
            stderr.print(r.describe(), highlight=False, soft_wrap=True)
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
