"""The gate's result for people and CI systems: a rich table, JUnit XML, a Markdown job summary.

JUnit is what every CI renders as a test report (GitLab's ``artifacts:reports:junit``, GitHub
actions such as dorny/test-reporter, Jenkins' ``junit`` step): one testsuite per metric, one
testcase per (row, metric); a regression is a failure, a row only one side has is skipped.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from slmdeploy.analysis.gate import (IMPROVEMENT, INCONCLUSIVE, NO_DATA, REGRESSION, UNCHANGED, GateResult,
                                     MetricResult, Row)
from slmdeploy.analysis.samples import METRICS
from slmdeploy.analysis.stats import Estimate
from slmdeploy.errors import OutputDirError

STYLE = {REGRESSION: "bold red", IMPROVEMENT: "green", INCONCLUSIVE: "yellow", UNCHANGED: "dim", NO_DATA: "dim"}
EMOJI = {REGRESSION: "🔴", IMPROVEMENT: "🟢", INCONCLUSIVE: "🟡", UNCHANGED: "⚪", NO_DATA: "➖"}
RULE = ("a regression exceeds the threshold in the bad direction and is significant: the bootstrap 95% CI "
        "of the change excludes 0 and Mann–Whitney p < 0.05")


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"


def estimate_text(e: Estimate) -> str:
    """``median [lo, hi]`` (the bootstrap 95% CI), or the median alone when one run gives no interval."""
    if e.median is None:
        return "-"
    return f"{_num(e.median)} [{_num(e.lo)}, {_num(e.hi)}]" if e.lo is not None and e.hi is not None else _num(e.median)


def change_text(r: MetricResult) -> str:
    c = r.change
    if c.change_pct is None:
        return "-"
    if c.ci_lo_pct is None or c.ci_hi_pct is None:
        return f"{c.change_pct:+.1f}%"
    return f"{c.change_pct:+.1f}% [{c.ci_lo_pct:+.1f}, {c.ci_hi_pct:+.1f}]"


def p_text(r: MetricResult) -> str:
    return "-" if r.change.p_value is None else f"{r.change.p_value:.2g}"


def n_text(r: MetricResult) -> str:
    return f"{r.change.baseline.n}/{r.change.candidate.n}"


def gate_table(result: GateResult) -> Table:
    """The terminal view: a line per (row, metric); the row's label only on its first line."""
    table = Table(title=f"candidate vs baseline (threshold {result.threshold_pct:g}%)", header_style="bold")
    for label, justify in (("row", "left"), ("metric", "left"), ("baseline median [95% CI]", "right"),
                           ("candidate median [95% CI]", "right"), ("change [95% CI]", "right"),
                           ("p", "right"), ("n", "right"), ("verdict", "left")):
        table.add_column(label, justify=justify)
    previous = None
    for r in result.results:
        table.add_row(r.label if r.key != previous else "", f"{r.metric.label} ({r.metric.unit})",
                      estimate_text(r.change.baseline), estimate_text(r.change.candidate), change_text(r),
                      p_text(r), n_text(r), f"[{STYLE[r.verdict]}]{r.verdict}[/]")
        previous = r.key
    return table


def unmatched_lines(result: GateResult) -> list[str]:
    lines = [f"only in baseline: {row.key.label()} ({len(row.run_ids)} run(s))" for row in result.only_baseline]
    lines += [f"only in candidate: {row.key.label()} ({len(row.run_ids)} run(s))" for row in result.only_candidate]
    lines += [f"excluded {e.side} run {e.run_id}: {e.reason}" for e in result.excluded]
    return lines


# ----- JUnit -----

def junit_xml(result: GateResult) -> str:
    """One testsuite per metric, one testcase per (row, metric); regressions fail, unmatched rows skip."""
    from junit_xml import TestCase, TestSuite, to_xml_report_string

    suites = []
    for name in result.metrics:
        metric = METRICS[name]
        classname = f"slmdeploy.compare.{name}"
        cases = []
        for r in (r for r in result.results if r.metric.name == name):
            case = TestCase(r.label, classname=classname, stdout=r.describe())
            if r.verdict == REGRESSION:
                case.add_failure_info(message=r.describe(), output=_detail(r), failure_type="regression")
            elif r.verdict == NO_DATA:
                case.add_skipped_info(message=r.describe())
            cases.append(case)
        for side, rows in (("baseline", result.only_baseline), ("candidate", result.only_candidate)):
            for row in rows:
                case = TestCase(row.key.label(), classname=classname)
                other = "candidate" if side == "baseline" else "baseline"
                case.add_skipped_info(message=f"only in {side}: no {other} run of this row to compare with",
                                      output="runs: " + ", ".join(row.run_ids))
                cases.append(case)
        suites.append(TestSuite(f"slmdeploy compare: {metric.label} ({metric.unit})", cases,
                                properties={"threshold_pct": f"{result.threshold_pct:g}", "metric": name,
                                            "higher_is_better": str(metric.higher_is_better).lower()}))
    return to_xml_report_string(suites)


def _detail(r: MetricResult) -> str:
    return (f"baseline median [95% CI]: {estimate_text(r.change.baseline)} {r.metric.unit} (n={r.change.baseline.n})\n"
            f"candidate median [95% CI]: {estimate_text(r.change.candidate)} {r.metric.unit} (n={r.change.candidate.n})\n"
            f"change [95% CI]: {change_text(r)}, Mann-Whitney p={p_text(r)}\n"
            f"threshold: {r.threshold_pct:g}%; {RULE}.\n")


# ----- Markdown -----

def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(result: GateResult) -> str:
    """A GitHub job summary ($GITHUB_STEP_SUMMARY): verdict, a table, unmatched and excluded runs."""
    icon = "❌" if result.regressions else "✅"
    lines = [f"## {icon} slmdeploy compare: {_md(result.summary())}", "",
             f"Threshold {result.threshold_pct:g}%; {RULE}.", "",
             "| row | metric | baseline median [95% CI] | candidate median [95% CI] | change [95% CI] | p | n | verdict |",
             "|---|---|--:|--:|--:|--:|--:|---|"]
    for r in result.results:
        lines.append(f"| {_md(r.label)} | {r.metric.label} ({r.metric.unit}) | {estimate_text(r.change.baseline)} | "
                      f"{estimate_text(r.change.candidate)} | {change_text(r)} | {p_text(r)} | {n_text(r)} | "
                      f"{EMOJI[r.verdict]} {r.verdict} |")
    for title, rows in (("Only in baseline (no candidate run)", result.only_baseline),
                        ("Only in candidate (no baseline run)", result.only_candidate)):
        if rows:
            lines += ["", f"**{title}:**", ""] + [f"- {_md(_row_line(row))}" for row in rows]
    if result.excluded:
        lines += ["", "**Excluded runs** (`--include-invalid` keeps them):", ""]
        lines += [f"- {e.side} `{e.run_id}`: {_md(e.reason)}" for e in result.excluded]
    return "\n".join(lines) + "\n"


def _row_line(row: Row) -> str:
    return f"{row.key.label()} ({len(row.run_ids)} run{'s' if len(row.run_ids) != 1 else ''})"


def write_text(path: Path, text: str, what: str) -> None:
    """Write an output file; a path that cannot be written is one clear error, not a traceback."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise OutputDirError(f"cannot write the {what} to {path}: {err.strerror or err}; pass a writable path.") from None
