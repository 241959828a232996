"""``html_report``: runs -> one self-contained HTML file (inline CSS and SVG; no script, no network).

The page opens from disk anywhere (a CI artifact, a mail attachment): nothing is fetched.
Per-run charts are limited (``per_run``) so a study of thousands of runs stays a few MB and
renders in seconds; the page says which runs it charted.
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from slmdeploy.errors import SlmdeployError
from slmdeploy.report.data import is_number as _ok

if TYPE_CHECKING:
    import pandas as pd

PER_RUN = 6  # runs that get their own timeline
OPS_RUNS = 3  # profiled runs whose op breakdown is charted (reading an ETDump takes seconds)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222;
padding:0 16px}
h1{font-size:1.5em;margin-bottom:0}h3{font-size:.95em;margin:1.2em 0 0;font-weight:600}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta,.note{color:#555;font-size:.9em}.note{background:#fff8e1;border-left:3px solid #f0b400;padding:6px 10px}
table{border-collapse:collapse;font-size:.82em;width:100%}th,td{padding:3px 6px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap}th{background:#f6f6f6;position:sticky;top:0;white-space:normal;vertical-align:bottom}td.l,th.l{text-align:left}
.ci{color:#777;font-size:.9em}.ok{color:#1a7f37}.bad{color:#b42318;font-weight:600}.unmeasured{color:#8a6100;font-weight:600}
figure{margin:12px 0}figure svg{max-width:100%;height:auto}figcaption{font-size:.85em;color:#555}
.scroll{max-height:480px;overflow:auto}
"""

METRIC_COLUMNS = [("prefill_tps", "prefill tok/s", 1), ("decode_tps", "decode tok/s", 1), ("ttft_ms", "TTFT ms", 2),
                  ("decode_step_ms", "decode step ms", 2), ("forward_ms", "forward ms", 3),
                  ("peak_rss_mib", "peak RSS MiB", 1)]


@dataclass(frozen=True)
class HtmlReport:
    path: Path
    runs: int
    rows: int
    charts: list[str]  # the chart ids on the page, in order
    per_run_note: str | None
    bytes: int
    seconds: float


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _ci_cell(r: dict[str, Any], metric: str, digits: int) -> str:
    med = r.get(f"{metric}_median")
    if not _ok(med):
        return "<td>-</td>"
    lo, hi = r.get(f"{metric}_ci_lo"), r.get(f"{metric}_ci_hi")
    ci = f' <span class="ci">[{lo:.{digits}f}, {hi:.{digits}f}]</span>' if _ok(lo) and _ok(hi) else ""
    return f"<td>{med:.{digits}f}{ci}</td>"


def summary_table(rows: "pd.DataFrame") -> str:
    """Median [95% CI] per metric and row; validity when the rows carry it."""
    from slmdeploy.report.data import workload_label

    metrics = [(m, label, d) for m, label, d in METRIC_COLUMNS
               if f"{m}_median" in rows and rows[f"{m}_median"].notna().any()]
    has_valid = "valid" in rows
    head = ["model", "quant", "runtime", "device", "threads", "workload", "runs"]
    out = ["<div class='scroll'><table id='summary'><thead><tr>"]
    out += [f"<th class='l'>{h}</th>" for h in head[:-1]] + ["<th>runs</th>"]
    out += [f"<th>{_e(label)} <span class='ci'>median [95% CI]</span></th>" for _, label, _ in metrics]
    out += ["<th class='l'>validity</th>" if has_valid else ""]
    out.append("</tr></thead><tbody>")
    for r in rows.to_dict("records"):
        device = r.get("device_model") or r.get("device") or "-"
        threads = int(r["threads"]) if _ok(r.get("threads")) else "-"
        cells = [r.get("model") or "-", r.get("quant") or "-", r.get("runtime") or "-", device, threads,
                 workload_label(r.get("workload"))]
        out.append("<tr>" + "".join(f"<td class='l'>{_e(c)}</td>" for c in cells) + f"<td>{int(r['runs'])}</td>")
        out += [_ci_cell(r, m, d) for m, _, d in metrics]
        if has_valid:
            valid = r.get("valid")
            if valid is None or (isinstance(valid, float) and math.isnan(valid)):
                out.append("<td class='l'>-</td>")
            elif valid:
                out.append("<td class='l ok'>valid</td>")
            else:
                out.append(f"<td class='l bad'>invalid: {_e(r.get('invalid_reasons') or '?')}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _figure(chart_id: str, svg: str, caption: str) -> str:
    return f"<figure class='chart' id='{chart_id}'>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def _run_title(r: dict[str, Any]) -> str:
    device = r.get("device_model") or r.get("device") or "?"
    return f"{r.get('run_id')}: {r.get('model')} {r.get('quant') or ''} on {device}"


def build_page(frame: "pd.DataFrame", *, title: str, sources: Iterable[str], per_run: int = PER_RUN,
               ops_runs: int = OPS_RUNS, survey: bool = False) -> tuple[str, list[str], str | None, int]:
    """(the HTML text, chart ids, the per-run note, rows) for the runs in ``frame``."""
    from slmdeploy.analysis.ops import has_profile, run_ops
    from slmdeploy.harness.trace import read_trace
    from slmdeploy.report import charts
    from slmdeploy.report.data import page_rows, pick_runs
    from slmdeploy.report.timeline import layout

    rows = page_rows(frame)
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p class='meta'>{_n(len(frame), 'run')} in {_n(len(rows), 'configuration')}, from {_e(', '.join(sources))}; "
             f"generated {_e(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))} by slmdeploy. "
             "Medians with percentile-bootstrap 95% confidence intervals over the measured runs "
             "(warm-ups excluded).</p>",
             "<h2>Summary</h2>", summary_table(rows)]
    ids: list[str] = []

    def add(chart_id: str, svg: str | None, caption: str) -> None:
        if svg:
            ids.append(chart_id)
            parts.append(_figure(chart_id, svg, caption))

    if survey:  # the SLM survey's figures first: the reason this page was asked for (report/survey.py)
        from slmdeploy.report.survey import survey_figures, survey_tables

        parts.append("<h2>SLM survey figures</h2>")
        for chart_id, svg, caption in survey_figures(survey_tables(frame)):
            add(chart_id, svg, caption)
        from slmdeploy.analysis.claims import HOLDS, UNMEASURED, survey_claims
        from slmdeploy.report.claims import claim_figures

        parts.append("<h2>SLM survey claims, measured on these runs</h2>")
        for check, chart_id, svg, caption in claim_figures(survey_claims(frame)):
            css = "ok" if check.verdict == HOLDS else "unmeasured" if check.verdict == UNMEASURED else "bad"
            parts.append(f"<p class='claim' id='verdict-{check.id}'><b>{_e(check.claim)}</b>: "
                         f"<span class='{css}'>{_e(check.verdict)}</span>. {_e(check.summary)}</p>")
            add(chart_id, svg, caption)
    parts.append("<h2>Across devices and quantizations</h2>")
    add("metrics", charts.metric_bars(rows, [("prefill_tps", "prefill tok/s"), ("decode_tps", "decode tok/s"),
                                             ("ttft_ms", "TTFT (ms)"), ("forward_ms", "forward (ms)")]),
        "Bars: median over the pooled measured runs of each configuration; whiskers: bootstrap 95% CI.")
    sizes = [c for c in ("model_size", "params") if c in rows and rows[c].nunique() > 1]
    if sizes:
        parts.append("<h2>Throughput vs model size</h2>")
        add("size", charts.size_scaling(rows), "Median tok/s (95% CI) per configuration against its model size "
            f"({'file size' if sizes[0] == 'model_size' else 'parameter count'}).")

    chosen, note = pick_runs(frame, per_run)
    timelines = {}
    for r in chosen.to_dict("records"):
        trace = Path(r["run_dir"]) / "trace.jsonl"
        if trace.is_file():
            timelines[r["run_id"]] = (r, layout(read_trace(trace)))
    if timelines:
        parts.append("<h2>Per-run timelines</h2>")
        if note:
            parts.append(f"<p class='note'>{_e(note)}</p>")
        for i, (run_id, (r, tl)) in enumerate(timelines.items()):
            parts.append(f"<h3>{_e(_run_title(r))}</h3>")
            add(f"timeline-{i}", charts.step_timeline(tl),
                "Each decode step's latency at the time it ran (grey: warm-up); core frequency caps "
                "(scaling_max_freq) and the hottest thermal zone on the right axes.")
        parts.append("<h2>Memory over time</h2>")
        add("memory", charts.memory_chart({run_id: tl for run_id, (r, tl) in timelines.items()}),
            "RSS (solid) and peak RSS (dotted) after load and after each iteration.")

    profiled = [r for r in frame.to_dict("records") if isinstance(r.get("run_dir"), str) and has_profile(Path(r["run_dir"]))]
    if profiled:
        parts.append("<h2>Op breakdown</h2>")
        if len(profiled) > ops_runs:
            parts.append(f"<p class='note'>Showing the first {ops_runs} of {len(profiled)} profiled runs.</p>")
        for i, r in enumerate(profiled[:ops_runs]):
            try:
                ops = run_ops(r["run_dir"])
            except SlmdeployError as err:
                parts.append(f"<p class='note'>{_e(r['run_id'])}: {_e(err)}</p>")
                continue
            add(f"ops-{i}", charts.ops_chart(ops, f"ops of {_run_title(r)}"),
                "Total time per operator / delegate call over every execute (share of execute time).")
    parts.append("<p class='meta'>Open a run as a trace: <code>slmdeploy report RUN --perfetto run.json</code>, "
                 "then load it in ui.perfetto.dev.</p>")
    doc = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           "<meta name='viewport' content='width=device-width,initial-scale=1'>"
           f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    return doc, ids, note, len(rows)


def html_report(paths: str | Path | Iterable[str | Path], out: str | Path, *, title: str = "slmdeploy report",
                per_run: int = PER_RUN, frame: "pd.DataFrame | None" = None, survey: bool = False) -> HtmlReport:
    """Write the runs under ``paths`` (what ``load_runs`` accepts) as one HTML file at ``out``."""
    from slmdeploy.analysis import load_runs

    started = time.perf_counter()
    sources = [str(paths)] if isinstance(paths, (str, Path)) else [str(p) for p in paths]
    frame = load_runs(paths) if frame is None else frame
    if frame.empty:
        raise SlmdeployError(f"no runs found in {', '.join(sources)}: nothing to report.")
    text, ids, note, rows = build_page(frame, title=title, sources=sources, per_run=per_run, survey=survey)
    out = Path(out)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise SlmdeployError(f"cannot write {out}: {err.strerror}; pick a writable --html path.") from None
    return HtmlReport(out, len(frame), rows, ids, note, len(text.encode()), time.perf_counter() - started)


def as_dict(report: HtmlReport) -> dict[str, Any]:
    return {"path": str(report.path), "runs": report.runs, "rows": report.rows, "charts": report.charts,
            "per_run_note": report.per_run_note, "bytes": report.bytes, "seconds": round(report.seconds, 3)}

