"""The HTML report's charts: matplotlib figures rendered to inline SVG strings.

SVG keeps the page one file that needs no network (no JavaScript chart library, no CDN)
and stays sharp when zoomed; text is kept as text (``svg.fonttype: none``), which keeps
the files small. Every artist that draws data gets an SVG id starting ``data-`` so a test
(or a reader's script) can tell a chart with data from an empty frame.

Figures are ``matplotlib.figure.Figure`` objects, never pyplot: they need no GUI backend
(headless as with ``matplotlib.use("Agg")``) without switching the backend of the caller's
process (a notebook that makes a report keeps its inline plots).
"""

from __future__ import annotations

import io
import math
import re
from typing import TYPE_CHECKING, Any, Iterable

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from slmdeploy.report.data import is_number as _ok
from slmdeploy.report.timeline import Timeline

if TYPE_CHECKING:
    import pandas as pd

RC = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.grid": True, "grid.alpha": 0.3,
      "font.family": "sans-serif"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
_gid = iter(range(1 << 62))


def _colors(n: int) -> list[str]:
    """``n`` distinct colours: tab10, or tab20's 20 when there are more series (then they repeat)."""
    if n <= len(PALETTE):
        return PALETTE
    from matplotlib.colors import to_hex

    return [to_hex(c) for c in matplotlib.colormaps["tab20"].colors]


def _mark(artists: Iterable[Any]) -> None:
    for artist in artists:
        artist.set_gid(f"data-{next(_gid)}")


def _svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element. Margins are fixed (no constrained layout, no tight
    bbox): each of those draws the figure once more, and page generation time is mostly drawing."""
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF boilerplate, per chart


def _figure(width: float, height: float, *, left: float = 0.8, right: float = 0.3, bottom: float = 0.5,
            top: float = 0.3) -> Figure:
    """A figure whose axes sit ``left``/``right``/``bottom``/``top`` inches from its edges."""
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=0.3, hspace=0.45)
    return fig


def _err(rows: list[dict[str, Any]], metric: str) -> tuple[list[float], list[list[float]]]:
    """Medians and asymmetric error bars (median - lo, hi - median); 0 where a row has no CI."""
    med = [r.get(f"{metric}_median") if _ok(r.get(f"{metric}_median")) else math.nan for r in rows]
    lo = [m - r[f"{metric}_ci_lo"] if _ok(m) and _ok(r.get(f"{metric}_ci_lo")) else 0 for m, r in zip(med, rows)]
    hi = [r[f"{metric}_ci_hi"] - m if _ok(m) and _ok(r.get(f"{metric}_ci_hi")) else 0 for m, r in zip(med, rows)]
    return med, [lo, hi]


def metric_bars(rows: "pd.DataFrame", metrics: list[tuple[str, str]], max_series: int = 20) -> str | None:
    """One panel per metric: x = device, a bar per configuration (quantization, model, ...),
    height = median over the pooled runs, whiskers = bootstrap 95% CI."""
    from slmdeploy.report.data import row_labels

    metrics = [(m, label) for m, label in metrics if f"{m}_median" in rows and rows[f"{m}_median"].notna().any()]
    if rows.empty or not metrics:
        return None
    rows = rows.copy()
    rows["device_label"] = [str(r.get("device_model") or r.get("device") or "?") for r in rows.to_dict("records")]
    rows["series"] = row_labels(rows, without=("device",))
    every = list(dict.fromkeys(rows["series"]))
    series = every[:max_series]
    devices = list(dict.fromkeys(rows["device_label"]))
    legend_rows = math.ceil(len(series) / 3) if len(series) > 1 else 0
    cols = 2 if len(metrics) > 1 else 1
    grid_rows = math.ceil(len(metrics) / cols)
    fig = _figure(10.0 if cols == 2 else 5.0, 2.4 * grid_rows + 0.2 * legend_rows + 0.3, top=0.2 * legend_rows + 0.25)
    axes = fig.subplots(grid_rows, cols, squeeze=False).ravel()
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    width = 0.8 / max(len(series), 1)
    recs = [r for r in rows.to_dict("records") if r["series"] in series]
    xs = [devices.index(r["device_label"]) + (series.index(r["series"]) - (len(series) - 1) / 2) * width for r in recs]
    palette = _colors(len(series))
    colors = [palette[series.index(r["series"]) % len(palette)] for r in recs]
    for ax, (metric, label) in zip(axes, metrics):
        med, err = _err(recs, metric)  # one bar() and one errorbar() per panel: artists cost drawing time
        bars = ax.bar(xs, med, width * 0.9, color=colors)
        _mark(bars.patches)
        eb = ax.errorbar(xs, med, yerr=err, fmt="none", ecolor="black", elinewidth=0.8, capsize=1.5)
        _mark(eb.lines[2])
        ax.set_xticks(range(len(devices)), devices, fontsize=8)
        ax.set_ylabel(label)
    if len(series) > 1:
        handles = [Patch(color=palette[i % len(palette)], label=name) for i, name in enumerate(series)]
        fig.legend(handles=handles, fontsize=7, ncol=min(3, len(series)), loc="upper left", frameon=False,
                   bbox_to_anchor=(0.06, 1.0), borderaxespad=0.2)
    if len(every) > len(series):
        fig.text(0.99, 0.995, f"the first {len(series)} of {len(every)} configurations (table order)", ha="right",
                 va="top", fontsize=7, color="#b42318")
    return _svg(fig)


def size_scaling(rows: "pd.DataFrame") -> str | None:
    """Decode and prefill tok/s (median, 95% CI) against model size (file size, else parameter
    count); a series per device."""
    if rows.empty:
        return None
    size = next((c for c in ("model_size", "params") if c in rows and rows[c].apply(_ok).sum() > 1), None)
    if size is None:
        return None
    rows = rows[rows[size].apply(_ok)]
    scale, xlabel = ((1 << 20), "model size (MiB)") if size == "model_size" else (1e6, "parameters (M)")
    fig = _figure(10.0, 3.0)
    axes = fig.subplots(1, 2)
    device = [str(r.get("device_model") or r.get("device") or "?") for r in rows.to_dict("records")]
    devices = list(dict.fromkeys(device))
    palette = _colors(len(devices))
    drawn = False
    for ax, metric, label in ((axes[0], "decode_tps", "decode tok/s"), (axes[1], "prefill_tps", "prefill tok/s")):
        for i, name in enumerate(devices):
            recs = [r for r, d in zip(rows.to_dict("records"), device) if d == name and _ok(r.get(f"{metric}_median"))]
            if not recs:
                continue
            xs = [r[size] / scale for r in recs]
            med, err = _err(recs, metric)
            eb = ax.errorbar(xs, med, yerr=err, fmt="o", ms=4, capsize=2, color=palette[i % len(palette)],
                             label=name, elinewidth=1)
            _mark([eb.lines[0], *eb.lines[2]])
            drawn = True
        values = rows[size] / scale
        if values.max() > 10 * values.min():
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
    if not drawn:
        return None
    axes[0].legend(fontsize=7, frameon=False)
    return _svg(fig)


def step_timeline(timeline: Timeline) -> str | None:
    """Decode-step latency over the run (warm-ups grey), with each core's frequency cap and the
    hottest thermal zone on secondary axes: a throttled phone shows the cap drop and steps slow."""
    steps = [s for s in timeline.slices if s.kind == "step"]
    if not steps:
        return None
    tele = timeline.telemetry
    caps = sorted({c for t in tele for c in t["cpu_max_khz"]}, key=lambda c: (len(c), c))
    zones = [t for t in tele if t["thermal_mc"]]
    fig = _figure(10.0, 2.8, right=0.3 + 0.7 * bool(caps) + 0.7 * bool(zones), top=0.35)
    ax = fig.subplots()
    for warm, color, label in ((True, "#aaaaaa", "warm-up steps"), (False, PALETTE[0], "measured steps")):
        mine = [s for s in steps if s.warmup == warm]
        if mine:
            (line,) = ax.plot([s.start_ns / 1e9 for s in mine], [s.dur_ns / 1e6 for s in mine], ".", ms=3,
                              color=color, label=label)
            _mark([line])
    ax.set_xlabel("time since harness start (s)")
    ax.set_ylabel(f"{steps[0].phase} step (ms)")
    handles, labels = ax.get_legend_handles_labels()
    if caps:
        ax2 = ax.twinx()
        seen: dict[tuple, str] = {}
        for cpu in caps:  # cores that share a policy have identical caps: one line each policy
            pts = tuple((t["t_ns"], t["cpu_max_khz"][cpu]) for t in tele if cpu in t["cpu_max_khz"])
            seen.setdefault(pts, cpu)
        for i, (pts, cpu) in enumerate(seen.items()):
            (line,) = ax2.plot([p[0] / 1e9 for p in pts], [p[1] / 1000 for p in pts], drawstyle="steps-post",
                               color=PALETTE[(i + 1) % len(PALETTE)], lw=1, alpha=0.8, label=f"{cpu} cap")
            _mark([line])
        ax2.set_ylabel("core frequency cap (MHz)")
        ax2.set_ylim(bottom=0)
        h, l = ax2.get_legend_handles_labels()
        handles, labels = handles + h, labels + l
    if zones:
        ax3 = ax.twinx()
        ax3.spines["right"].set_position(("outward", 55 if caps else 0))
        ax3.spines["right"].set_visible(True)
        (line,) = ax3.plot([t["t_ns"] / 1e9 for t in zones], [max(t["thermal_mc"].values()) / 1000 for t in zones],
                           color="#d62728", lw=1.2, ls="--", label="hottest zone °C")
        _mark([line])
        ax3.set_ylabel("temperature (°C)")
        ax3.grid(False)
        h, l = ax3.get_legend_handles_labels()
        handles, labels = handles + h, labels + l
    if not caps and not zones:
        ax.text(0.99, 0.97, "no frequency or temperature telemetry in this trace", transform=ax.transAxes,
                ha="right", va="top", fontsize=7, color="#666666")
    ax.legend(handles[:8], labels[:8], fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False,
              ncol=len(handles[:8]), borderaxespad=0.1)
    return _svg(fig)


def memory_chart(timelines: dict[str, Timeline]) -> str | None:
    """RSS (solid) and its high-water mark (dotted) after load and each iteration, per run."""
    series = {k: t.memory for k, t in timelines.items() if t.memory}
    if not series:
        return None
    fig = _figure(10.0, 2.8)
    ax = fig.subplots()
    for i, (label, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        (rss,) = ax.plot([p["t_ns"] / 1e9 for p in points], [p["rss_kib"] / 1024 for p in points], "-o", ms=2,
                         lw=1, color=color, label=label)
        hwm = [p for p in points if p.get("hwm_kib") is not None]
        marked = [rss]
        if hwm:
            (line,) = ax.plot([p["t_ns"] / 1e9 for p in hwm], [p["hwm_kib"] / 1024 for p in hwm], ":", lw=1,
                              color=color)
            marked.append(line)
        _mark(marked)
    ax.set_xlabel("time since harness start (s)")
    ax.set_ylabel("RSS (MiB)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return _svg(fig)


def ops_chart(ops: "pd.DataFrame", title: str, top: int = 12) -> str | None:
    """The ``top`` ops/delegate calls by total time (share of execute time in the label)."""
    if ops.empty:
        return None
    df = ops[ops["category"].isin(["operator", "delegate_call", "runtime"])] if "category" in ops else ops
    df = (df if not df.empty else ops).sort_values("total_ms", ascending=False).head(top).iloc[::-1]
    fig = _figure(10.0, 0.22 * len(df) + 0.9, left=2.6)
    ax = fig.subplots()
    bars = ax.barh(range(len(df)), df["total_ms"], color=PALETTE[0])
    _mark(bars.patches)
    labels = [f"{op} ({share:.0%})" if _ok(share) else str(op) for op, share in zip(df["op"], df.get("share", [None] * len(df)))]
    ax.set_yticks(range(len(df)), labels, fontsize=7)
    ax.set_xlabel("total time (ms)")
    ax.set_title(title, fontsize=9, loc="left")
    return _svg(fig)
