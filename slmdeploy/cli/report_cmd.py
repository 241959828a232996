from __future__ import annotations

from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--compare/--no-compare", default=None, help="Compare runs against the first [default: on for 2+ runs].")
@json_option
def report_cmd(paths: tuple[Path, ...], compare: bool | None, as_json: bool) -> None:
    """Re-render stored runs: run directories, folders of runs, or results .duckdb files.

    \b
    Example:
      slmdeploy report runs/                          # every run in the folder
      slmdeploy report runs/results.duckdb --json
      slmdeploy report runs/2026…-fp32 runs/2026…-8da4w --compare
    """
    from slmdeploy.analysis import load_runs
    from slmdeploy.analysis.table import comparison, comparison_table, results_table

    frame = load_runs(paths)
    compare = len(frame) > 1 if compare is None else compare
    if as_json:
        out = {"runs": frame.to_dict("records")}
        if compare and len(frame) > 1:
            out["comparison"] = comparison(frame).to_dict("records")
        emit_json(out)
        return
    if frame.empty:
        stdout.print("no runs found")
        return
    stdout.print(results_table(frame))
    if compare and len(frame) > 1:
        stdout.print(comparison_table(frame))
