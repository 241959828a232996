from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stderr, stdout
from slmdeploy.errors import SlmdeployError

DEFAULT_METRICS = ("decode_tps", "prefill_tps", "ttft_ms", "peak_rss_mib")  # = analysis.gate.DEFAULT_METRICS
EXIT_CRASH = 3  # a bug must not read as "regression" (1) nor as "usage" (2) to CI


@click.command("compare")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option("--metric", "-m", "metrics", multiple=True, metavar="NAME",
              help="A metric to gate on (repeatable): prefill_tps, decode_tps, ttft_ms, decode_step_ms, forward_ms, "
                   f"peak_rss_mib [default: {', '.join(DEFAULT_METRICS)}].")
@click.option("--threshold", default="5%", show_default=True, metavar="PCT",
              help="Smallest change (in %) that can count as a regression or improvement.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a JUnit XML report (a testcase per row and metric; regressions fail).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown summary (e.g. for $GITHUB_STEP_SUMMARY).")
@click.option("--include-invalid", is_flag=True, help="Also compare invalid and incomplete runs [default: excluded].")
@click.option("--match-device", type=click.Choice(["spec", "model"]), default="spec", show_default=True,
              help="Match runs on the same device (spec: serial/address and model) or any device of the same model.")
@click.option("--fail-unmatched", is_flag=True, help="Also exit 1 when a row is only in one side.")
@json_option
def compare_cmd(baseline: Path, candidate: Path, metrics: tuple[str, ...], threshold: str, junit_path: Path | None,
                markdown_path: Path | None, include_invalid: bool, match_device: str, fail_unmatched: bool,
                as_json: bool) -> None:
    """Gate CANDIDATE's runs against BASELINE's: exit 1 on a real regression.

    BASELINE and CANDIDATE are each a run directory, a folder of runs, a study directory or a
    results .duckdb file. Runs are matched by model, target, device, workload and threads; the
    per-run values of each matched row are pooled. A regression is a change in the bad direction
    beyond --threshold that is significant (bootstrap 95% CI of the change excludes 0 and
    Mann–Whitney p < 0.05); beyond the threshold but not significant is "inconclusive".

    Exit status: 0 no regression, 1 regression (or --fail-unmatched and an unmatched row),
    2 usage error (bad option, not runs, nothing matched), 3 internal error.

    \b
    Example:
      slmdeploy compare baseline/ studies/nightly --threshold 5% --junit gate.xml --markdown gate.md
      slmdeploy compare main.duckdb runs/ -m decode_tps -m ttft_ms --json
    """
    try:
        result = _run(baseline, candidate, metrics, threshold, include_invalid, match_device)
        _write_outputs(result, junit_path, markdown_path)
    except SlmdeployError as err:
        stderr.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)  # every error of this command is a usage error to CI, whatever its class elsewhere
    except Exception:  # a bug: keep the traceback, but never exit 1 (= regression)
        traceback.print_exc()
        sys.exit(EXIT_CRASH)
    code = result.exit_code(fail_unmatched)
    if as_json:
        emit_json({**result.as_dict(), "exit_code": code})
    else:
        _print(result)
    sys.exit(code)


def _run(baseline: Path, candidate: Path, metrics: tuple[str, ...], threshold: str, include_invalid: bool,
         match_device: str):
    from slmdeploy.analysis import load_runs
    from slmdeploy.analysis.gate import GateError, check_metrics, compare, parse_threshold

    threshold_pct = parse_threshold(threshold)
    chosen = check_metrics(metrics or DEFAULT_METRICS)
    frames = []
    for side, path in (("baseline", baseline), ("candidate", candidate)):
        if not path.exists():
            raise GateError(f"{side} {path} does not exist; pass a run directory, a folder of runs, a study "
                            "directory or a results .duckdb file.")
        frames.append(load_runs(path))
    return compare(frames[0], frames[1], chosen, threshold_pct, include_invalid=include_invalid,
                   device_by=match_device)


def _write_outputs(result, junit_path: Path | None, markdown_path: Path | None) -> None:
    from slmdeploy.analysis.gate_output import junit_xml, markdown, write_text

    if junit_path:
        write_text(junit_path, junit_xml(result), "JUnit report")
    if markdown_path:
        write_text(markdown_path, markdown(result), "Markdown summary")


def _print(result) -> None:
    from slmdeploy.analysis.gate_output import gate_table, unmatched_lines

    stdout.print(gate_table(result))
    for line in unmatched_lines(result):
        stdout.print(line, highlight=False, soft_wrap=True)
    for r in result.regressions:
        stdout.print(f"[bold red]regression:[/] {r.label}: {r.describe()}", highlight=False, soft_wrap=True)
    stdout.print(("[bold red]" if result.regressions else "[bold green]") + result.summary() + "[/]",
                 highlight=False, soft_wrap=True)
