"""The survey's claims (analysis/claims.py) as a report shows them: a verdict table, and a figure per claim."""

from __future__ import annotations

from typing import Any, Callable

from slmdeploy.analysis.claims import FAILS, HOLDS, ClaimCheck

MAX_BARS = 12


def _bytes_chart(check: ClaimCheck) -> str:
    """Decode ms/token against model MiB, a colour per quantization, and each device's fit line."""
    from slmdeploy.report.charts import _colors, _figure, _mark, _svg

    pts = check.evidence
    quants = list(dict.fromkeys(p["quant"] for p in pts))
    palette = _colors(len(quants))
    fig = _figure(6.0, 3.4, right=1.6)
    ax = fig.subplots()
    for i, quant in enumerate(quants):
        mine = [p for p in pts if p["quant"] == quant]
        _mark(ax.plot([p["model_mib"] for p in mine], [p["decode_ms_per_token"] for p in mine], "o", ms=5,
                      color=palette[i % len(palette)], label=quant))
    fits = {p["device"]: p["fit"] for p in pts if p.get("fit")}
    for device, fit in fits.items():
        xs = [p["model_mib"] for p in pts if p["device"] == device]
        line = [min(xs), max(xs)]
        _mark(ax.plot(line, [fit["intercept_ms"] + fit["slope_ms_per_mib"] * x for x in line], "k--", lw=1,
                      label=f"fit {device}: R² {fit['r2']:.2f}"))
    ax.set_xlabel("model file (MiB)")
    ax.set_ylabel("decode ms / token")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _svg(fig)


def _paired_bars(labels: list[str], left: list[float], right: list[float], names: tuple[str, str], ylabel: str,
                 notes: list[str]) -> str:
    """Two bars per label (e.g. fp32 and 4-bit) with a note above each pair."""
    from slmdeploy.report.charts import _figure, _mark, _svg

    fig = _figure(max(5.0, 0.9 * len(labels) + 1.5), 3.4, bottom=1.2, top=0.4)
    ax = fig.subplots()
    xs = list(range(len(labels)))
    _mark(ax.bar([x - 0.2 for x in xs], left, width=0.38, color="#1f77b4", label=names[0]))
    _mark(ax.bar([x + 0.2 for x in xs], right, width=0.38, color="#ff7f0e", label=names[1]))
    for x, top, note in zip(xs, (max(a, b) for a, b in zip(left, right)), notes):
        ax.annotate(note, (x, top), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(xs, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    ax.legend(fontsize=7, frameon=False)
    return _svg(fig)


def _kv_chart(check: ClaimCheck) -> str:
    rows = check.evidence[:MAX_BARS]
    return _paired_bars([f"{r['model']}\n{r['heads']}/{r['kv_heads']} heads" for r in rows],
                        [r["mha_mib"] for r in rows], [r["cache_mib"] for r in rows],
                        ("multi-head cache (same layers)", "the artifact's cache"), "KV cache MiB",
                        [f"{r['shrink']:.2f}x" for r in rows])


def _int4_chart(check: ClaimCheck) -> str:
    rows = check.evidence[:MAX_BARS]
    return _paired_bars([f"{r['model']}\n{r['runtime']} {r['quant']}" for r in rows], [r["fp32_mib"] for r in rows],
                        [r["int4_mib"] for r in rows], ("fp32", "4-bit"), "model file MiB",
                        [f"{r['shrink']:.2f}x" for r in rows])


def _prefill_chart(check: ClaimCheck) -> str:
    rows = sorted(check.evidence, key=lambda r: -abs(r["change_pct"]))[:MAX_BARS]
    return _paired_bars([f"{r['model_a']} vs\n{r['model_b']} ({r['quant']})" for r in rows],
                        [r["prefill_tps_a"] for r in rows], [r["prefill_tps_b"] for r in rows],
                        ("first model", "second model"), "prefill tok/s (median)",
                        [f"{r['change_pct']:+.0f}%" + ("" if r["differs"] else " (n.s.)") for r in rows])


CHARTS: dict[str, tuple[Callable[[ClaimCheck], str], str]] = {
    "decode-bytes": (_bytes_chart, "Decode latency per token against the model file's size, a point per "
                                   "configuration; dashed: the least-squares fit per device."),
    "gqa-kv": (_kv_chart, "The KV cache each artifact holds (its cache tensors) next to the multi-head cache of the "
                          "same layers, head size and positions; the label is the shrink."),
    "int4-size": (_int4_chart, "Model file size fp32 vs 4-bit, same model and runtime; the label is the shrink."),
    "prefill-architecture": (_prefill_chart, "Prefill tok/s of models of equal size (parameters within 10%) and "
                                             "different architecture; the label is the change and whether it is "
                                             "significant."),
}


def claim_figures(checks: list[ClaimCheck]) -> list[tuple[ClaimCheck, str, str | None, str]]:
    """(check, chart id, SVG or None, caption) per claim; a check without evidence has no figure."""
    out = []
    for check in checks:
        draw, caption = CHARTS[check.id]
        out.append((check, f"claim-{check.id}", draw(check) if check.evidence else None, caption))
    return out


STYLE = {HOLDS: "green", FAILS: "red"}


def rich_claims(checks: list[ClaimCheck]) -> Any:
    """A rich Table: claim, verdict, the numbers behind it."""
    from rich.table import Table

    table = Table(title="survey claims, measured on these runs", header_style="bold")
    table.add_column("claim", overflow="fold")
    table.add_column("verdict")
    table.add_column("measured", overflow="fold")
    for c in checks:
        color = STYLE.get(c.verdict, "yellow")
        table.add_row(c.claim, f"[{color}]{c.verdict}[/]", c.summary)
    return table
