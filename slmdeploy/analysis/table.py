"""Results tables in the spirit of llama-bench, and side-by-side comparison of runs."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.table import Table

COLUMNS = [
    ("model", "model"),
    ("params", "params"),
    ("size", "size"),
    ("runtime", "runtime"),
    ("delegates", "delegate"),
    ("quant", "quant"),
    ("device", "device"),
    ("harness", "harness"),
    ("threads", "threads"),
    ("pp", "test"),
    ("prefill", "prefill tok/s"),
    ("decode", "decode tok/s"),
    ("ttft_ms", "TTFT ms"),
    ("load_ms", "load ms"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("status", "status"),
]


def _num(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _params(n: Any) -> str:
    if not _num(n):
        return "-"
    n = float(n)
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _size(n: Any) -> str:
    return f"{float(n) / (1 << 20):.1f} MiB" if _num(n) else "-"


def _pm(mean: Any, sd: Any) -> str:
    if not _num(mean):
        return "-"
    return f"{mean:.2f} ± {sd:.2f}" if _num(sd) else f"{mean:.2f}"


def _fixed(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if _num(value) else "-"


def _device_label(r: dict[str, Any]) -> str:
    spec = str(r.get("device") or "-")
    return spec if spec == "local" or not r.get("device_model") else f"{r['device_model']} ({spec})"


def _delegate_label(r: dict[str, Any]) -> str:
    """The artifact's delegates; for a LiteRT run, the accelerator it ran on: ``xnnpack+gpu+nnapi @gpu``."""
    delegates = str(r.get("delegates") or "-")
    accelerator = r.get("accelerator")
    return f"{delegates} @{accelerator}" if isinstance(accelerator, str) and accelerator else delegates


def display_rows(frame: pd.DataFrame) -> list[dict[str, str]]:
    rows = []
    for r in frame.to_dict("records"):
        status = r.get("status") or "-"
        if r.get("thermal_throttled") is True:
            status += " (throttled)"
        rows.append(
            {
                "model": str(r.get("model") or "-"),
                "params": _params(r.get("params")),
                "size": _size(r.get("model_size")),
                "runtime": str(r.get("runtime") or "-"),
                "delegates": _delegate_label(r),
                "quant": str(r.get("quant") or "-"),
                "device": _device_label(r),
                "harness": str(r.get("harness") or "-"),
                "threads": str(int(r["threads"])) if _num(r.get("threads")) else "-",
                "pp": f"pp{int(r['prefill_tokens'])}+tg{int(r['gen_tokens'] or 0)}" if _num(r.get("prefill_tokens")) else "-",
                "prefill": _pm(r.get("prefill_tps"), r.get("prefill_tps_sd")),
                "decode": _pm(r.get("decode_tps"), r.get("decode_tps_sd")),
                "ttft_ms": _fixed(r.get("ttft_ms"), 2),
                "load_ms": _fixed(r.get("load_ms"), 1),
                "peak_rss_mib": _fixed(r.get("peak_rss_mib"), 1),
                "status": status,
            }
        )
    return rows


def results_table(frame: pd.DataFrame, title: str | None = None) -> Table:
    table = Table(title=title, header_style="bold")
    for key, label in COLUMNS:
        table.add_column(label, justify="right" if key not in ("model", "runtime", "delegates", "quant", "device", "harness", "status") else "left")
    for row in display_rows(frame):
        table.add_row(*(row[key] for key, _ in COLUMNS))
    return table


COMPARED = [
    ("prefill_tps", "prefill tok/s", True),
    ("decode_tps", "decode tok/s", True),
    ("ttft_ms", "TTFT ms", False),
    ("load_ms", "load ms", False),
    ("peak_rss_mib", "peak RSS MiB", False),
    ("model_size", "size MiB", False),
]


def comparison(frame: pd.DataFrame) -> pd.DataFrame:
    """Each run against the first (the baseline): values and relative change in %."""
    base = frame.iloc[0]
    rows = []
    for _, run in frame.iterrows():
        row = {"run_id": run["run_id"], "label": f"{run.get('model')} {run.get('runtime')} {run.get('quant')} @ "
                                                  f"{run.get('device_model') or run.get('device')}"}
        for key, _, _ in COMPARED:
            value = run.get(key)
            value = value / (1 << 20) if key == "model_size" and _num(value) else value
            ref = base.get(key)
            ref = ref / (1 << 20) if key == "model_size" and _num(ref) else ref
            row[key] = value
            row[f"{key}_delta_pct"] = (value / ref - 1) * 100 if _num(value) and _num(ref) and ref else None
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(frame: pd.DataFrame) -> Table:
    cmp = comparison(frame)
    table = Table(title="comparison (first run = baseline)", header_style="bold")
    table.add_column("run")
    for _, label, _ in COMPARED:
        table.add_column(label, justify="right")
    for i, row in cmp.iterrows():
        cells = [row["label"] + (" [dim](baseline)[/]" if i == 0 else "")]
        for key, _, higher_better in COMPARED:
            value, delta = row[key], row[f"{key}_delta_pct"]
            text = _fixed(value, 2)
            if i and _num(delta):
                good = (delta > 0) == higher_better
                text += f" [{'green' if good else 'red'}]({delta:+.1f}%)[/]"
            cells.append(text)
        table.add_row(*cells)
    return table


def ops_table(ops: pd.DataFrame, title: str | None = None, top: int = 20) -> Table:
    """An op-level profile (``analysis.ops.run_ops``): where the execute time went, largest first."""
    table = Table(title=title, header_style="bold")
    for label, justify in (("op", "left"), ("category", "left"), ("backend", "left"), ("calls", "right"),
                           ("total ms", "right"), ("mean ms", "right"), ("p50 ms", "right"), ("share", "right")):
        table.add_column(label, justify=justify)
    for r in ops.head(top).to_dict("records"):
        table.add_row(str(r["op"]), str(r["category"]), r["backend"] if isinstance(r["backend"], str) and r["backend"] else "-", str(r["calls"]),
                      _fixed(r["total_ms"], 3), _fixed(r["mean_ms"], 4), _fixed(r["p50_ms"], 4),
                      f"{r['share'] * 100:.1f}%" if _num(r["share"]) else "-")
    return table
