"""Results tables in the spirit of llama-bench, and side-by-side comparison of runs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from rich import box
from rich.table import Table

from slmdeploy.analysis.validity import valid_only

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
    ("prefill_cv", "CV"),
    ("decode", "decode tok/s"),
    ("decode_cv", "CV"),
    ("ttft_ms", "TTFT ms"),
    ("load_ms", "load ms"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("status", "status"),
    ("valid", "valid"),
]
ALWAYS = ("model", "prefill", "decode", "valid")
NO_WRAP = ("model", "runtime", "prefill", "decode", "pp")  # median [CI] cells read badly when broken
LEFT = ("model", "runtime", "delegates", "quant", "device", "harness", "status", "valid")


def _num(value: Any) -> bool:
    """A finite number to format (a string or bool from a hand-edited run.json is not one)."""
    return (isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return (isinstance(value, str) and value == "") or (isinstance(value, float) and math.isnan(value))


def _str(value: Any) -> str:
    """A text cell: missing (None, NaN, '') is '-'."""
    return "-" if _missing(value) else str(value)


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


def _ci(median: Any, lo: Any, hi: Any, digits: int = 2) -> str:
    """``median [lo, hi]``: the median with its bootstrap 95% CI (just the median when there is none)."""
    if not _num(median):
        return "-"
    text = f"{median:.{digits}f}"
    return text + f" [{lo:.{digits}f}, {hi:.{digits}f}]" if _num(lo) and _num(hi) else text


def _pct(value: Any) -> str:
    return f"{value * 100:.1f}%" if _num(value) else "-"


def _metric(r: dict[str, Any], name: str, digits: int = 2) -> str:
    """A run's metric as median [CI]; the older mean column when the record has no per-run samples."""
    if _num(r.get(f"{name}_median")):
        return _ci(r.get(f"{name}_median"), r.get(f"{name}_ci_lo"), r.get(f"{name}_ci_hi"), digits)
    return _pm(r.get(name), r.get(f"{name}_sd")) if name.endswith("_tps") else _fixed(r.get(name), digits)


def _valid_label(r: dict[str, Any]) -> str:
    value = r.get("valid")
    return "-" if not isinstance(value, (bool, np.bool_)) else ("yes" if value else "[red]no[/]")


def _tests(r: dict[str, Any]) -> str:
    """llama-bench's test label, ``pp16+tg8`` (``-g 0``: ``pp16+tg0``)."""
    if not _num(r.get("prefill_tokens")):
        return "-"
    gen = r.get("gen_tokens")
    return f"pp{int(r['prefill_tokens'])}+tg{int(gen) if _num(gen) else 0}"


def _fixed(value: Any, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if _num(value) else "-"


def _device_label(r: dict[str, Any]) -> str:
    spec, model = _str(r.get("device")), _str(r.get("device_model"))
    return spec if spec == "local" or model == "-" else f"{model} ({spec})"


def _delegate_label(r: dict[str, Any]) -> str:
    """The artifact's delegates; for a LiteRT run, the accelerator it ran on: ``xnnpack+gpu+nnapi @gpu``."""
    delegates = _str(r.get("delegates"))
    accelerator = r.get("accelerator")
    return f"{delegates} @{accelerator}" if isinstance(accelerator, str) and accelerator else delegates


def display_rows(frame: pd.DataFrame) -> list[dict[str, str]]:
    rows = []
    for r in frame.to_dict("records"):
        status = _str(r.get("status"))
        if r.get("thermal_throttled") is True:
            status += " (throttled)"
        rows.append(
            {
                "model": _str(r.get("model")),
                "params": _params(r.get("params")),
                "size": _size(r.get("model_size")),
                "runtime": _str(r.get("runtime")),
                "delegates": _delegate_label(r),
                "quant": _str(r.get("quant")),
                "device": _device_label(r),
                "harness": _str(r.get("harness")),
                "threads": str(int(r["threads"])) if _num(r.get("threads")) else "-",
                "pp": _tests(r),
                "prefill": _metric(r, "prefill_tps", 1),
                "prefill_cv": _pct(r.get("prefill_tps_cv")),
                "decode": _metric(r, "decode_tps", 1),
                "decode_cv": _pct(r.get("decode_tps_cv")),
                "ttft_ms": _fixed(r.get("ttft_ms_median") if _num(r.get("ttft_ms_median")) else r.get("ttft_ms"), 1),
                "load_ms": _fixed(r.get("load_ms"), 1),
                "peak_rss_mib": _fixed(r.get("peak_rss_mib"), 1),
                "status": status,
                "valid": _valid_label(r),
            }
        )
    return rows


def results_table(frame: pd.DataFrame, title: str | None = None) -> Table:
    rows = display_rows(frame)
    # a column no run has a value for (params of a generic model, harness of an old run) only takes width
    columns = [(key, label) for key, label in COLUMNS if key in ALWAYS or any(r[key] != "-" for r in rows)]
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for key, label in columns:
        table.add_column(label, justify="left" if key in LEFT else "right", no_wrap=key in NO_WRAP)
    for row in rows:
        table.add_row(*(row[key] for key, _ in columns))
    return table


def _skipped(count: Any) -> str:
    return f" [{int(count)} trace line{'s' if count > 1 else ''} skipped]" if _num(count) and count > 0 else ""


def invalid_lines(frame: pd.DataFrame, limit: int = 50) -> list[str]:
    """``run_id: reasons`` for each invalid run (at most ``limit``, then how many more)."""
    if "valid" not in frame.columns:
        return []
    bad = frame[~frame["valid"].fillna(False).astype(bool)]
    lines = [f"{r.get('run_id')}: {r.get('invalid_reasons') or 'invalid'}{_skipped(r.get('trace_skipped_lines'))}"
             for r in bad.head(limit).to_dict("records")]
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more invalid runs")
    return lines


SUMMARY_METRICS = [("prefill_tps", "prefill tok/s"), ("decode_tps", "decode tok/s"), ("ttft_ms", "TTFT ms"),
                   ("peak_rss_mib", "peak RSS MiB")]


def summary_table(rows: pd.DataFrame, title: str | None = None) -> Table:
    """Rows of ``summary.summarize_rows``: one line per identity, median [95% CI] and CV over pooled runs."""
    table = Table(title=title, header_style="bold")
    for label in ("model", "runtime", "delegate", "quant", "device", "threads", "runs", "valid"):
        table.add_column(label, justify="right" if label in ("threads", "runs", "valid") else "left")
    for _, label in SUMMARY_METRICS:
        table.add_column(label, justify="right", no_wrap=True)
        if label.endswith("tok/s"):
            table.add_column("CV", justify="right")
    for r in rows.to_dict("records"):
        cells = [_str(r.get("model")), _str(r.get("runtime")), _delegate_label(r),
                 _str(r.get("quant")), _device_label(r),
                 str(int(r["threads"])) if _num(r.get("threads")) else "-",
                 str(r.get("runs")), f"{r.get('valid_runs')}/{r.get('runs')}"]
        for key, label in SUMMARY_METRICS:
            cells.append(_ci(r.get(f"{key}_median"), r.get(f"{key}_ci_lo"), r.get(f"{key}_ci_hi"), 1))
            if label.endswith("tok/s"):
                cells.append(_pct(r.get(f"{key}_cv")))
        table.add_row(*cells)
    return table


COMPARED = [
    ("prefill_tps", "prefill tok/s", True),
    ("decode_tps", "decode tok/s", True),
    ("ttft_ms", "TTFT ms", False),
    ("load_ms", "load ms", False),
    ("peak_rss_mib", "peak RSS MiB", False),
    ("model_size", "size MiB", False),
]


def comparison(frame: pd.DataFrame, include_invalid: bool = False) -> pd.DataFrame:
    """Each run against the first (the baseline): values and relative change in %.

    Invalid runs (``valid`` false, see ``analysis.validity``) are left out, and so never the
    baseline, unless ``include_invalid``. No runs left: an empty frame.
    """
    if not include_invalid:
        frame = valid_only(frame)
    if frame.empty:
        return pd.DataFrame(columns=["run_id", "label", *(c for key, _, _ in COMPARED for c in (key, f"{key}_delta_pct"))])
    base = frame.iloc[0]
    rows = []
    for _, run in frame.iterrows():
        device = _str(run.get("device_model")) if not _missing(run.get("device_model")) else _str(run.get("device"))
        row = {"run_id": run["run_id"],
               "label": f"{_str(run.get('model'))} {_str(run.get('runtime'))} {_str(run.get('quant'))} @ {device}"}
        for key, _, _ in COMPARED:
            value = run.get(key)
            value = value / (1 << 20) if key == "model_size" and _num(value) else value
            ref = base.get(key)
            ref = ref / (1 << 20) if key == "model_size" and _num(ref) else ref
            row[key] = value
            row[f"{key}_delta_pct"] = (value / ref - 1) * 100 if _num(value) and _num(ref) and ref else None
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(frame: pd.DataFrame, include_invalid: bool = False) -> Table:
    cmp = comparison(frame, include_invalid)
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
