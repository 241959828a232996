"""`report --survey`: the SLM survey's four figures (arXiv 2409.15790) from a study's runs, and the tables behind them.

- latency vs parameters, a series per quantization (decode ms/token and TTFT)
- peak memory split into weights / KV cache / other (analysis/memory.py), models ordered by vocabulary
- decode time per token index over the first tokens (each step's ``step_ns``, median over measured runs)
- KV cache size by attention type (MHA / GQA / MQA from the manifest's heads and kv_heads)

One configuration = (model, quant, device); its value is the median over its runs. docs/survey.md.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmdeploy.analysis.configurations import configurations as _groups
from slmdeploy.analysis.configurations import first_of as _first
from slmdeploy.analysis.configurations import is_number as _ok
from slmdeploy.analysis.configurations import median_of

if TYPE_CHECKING:
    import pandas as pd

FIRST_TOKENS = 50  # the survey's generation length: token indices drawn
MAX_SERIES = 12  # configurations drawn in the per-token figure
ATTENTION_ORDER = {"MHA": 0, "GQA": 1, "MQA": 2}


def latency_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Per configuration: parameters, decode ms/token, TTFT ms and tok/s (medians over its runs)."""
    import pandas as pd

    rows = []
    for (model, quant, device), runs in _groups(frame).items():
        tps = median_of(runs, "decode_tps")
        rows.append({"model": model, "quant": quant, "device": device, "params": _first(runs, "params"),
                     "decode_tps": tps, "decode_ms_per_token": 1000 / tps if tps else None,
                     "ttft_ms": median_of(runs, "ttft_ms"),
                     "prefill_tps": median_of(runs, "prefill_tps"), "runs": len(runs)})
    return pd.DataFrame(rows, columns=["model", "quant", "device", "params", "decode_tps", "decode_ms_per_token",
                                       "ttft_ms", "prefill_tps", "runs"])


def memory_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Per configuration, ordered by vocabulary: peak RSS and its weights / KV / other split (MiB)."""
    import pandas as pd

    rows = []
    for (model, quant, device), runs in _groups(frame).items():
        rows.append({"model": model, "quant": quant, "device": device, "vocab_size": _first(runs, "arch_vocab_size"),
                     **{c: median_of(runs, f"mem_{c}")
                        for c in ("peak_mib", "weights_mib", "kv_mib", "other_mib", "before_load_mib", "work_mib")},
                     "basis": _first(runs, "mem_basis")})
    table = pd.DataFrame(rows, columns=["model", "quant", "device", "vocab_size", "peak_mib", "weights_mib", "kv_mib",
                                        "other_mib", "before_load_mib", "work_mib", "basis"])
    return table.sort_values(["vocab_size", "model", "quant"], na_position="last", kind="stable").reset_index(drop=True)


def kv_table(frame: "pd.DataFrame") -> "pd.DataFrame":
    """Per model (the KV cache does not depend on the weights' quantization): attention type and cache size."""
    import pandas as pd

    rows, seen = [], set()
    for (model, _quant, _device), runs in _groups(frame).items():
        if model in seen or _first(runs, "mem_kv_mib") is None:
            continue
        seen.add(model)
        kv, positions = _first(runs, "mem_kv_mib"), _first(runs, "mem_kv_positions")
        rows.append({"model": model, "attention": _first(runs, "arch_attention"), "layers": _first(runs, "arch_layers"),
                     "heads": _first(runs, "arch_heads"), "kv_heads": _first(runs, "arch_kv_heads"),
                     "kv_positions": positions, "kv_mib": kv,
                     "kv_kib_per_token": kv * 1024 / positions if positions else None})
    table = pd.DataFrame(rows, columns=["model", "attention", "layers", "heads", "kv_heads", "kv_positions", "kv_mib",
                                        "kv_kib_per_token"])
    order = table["attention"].map(lambda a: ATTENTION_ORDER.get(a, 9))
    return table.assign(_o=order).sort_values(["_o", "kv_mib"], kind="stable").drop(columns="_o").reset_index(drop=True)


def token_table(frame: "pd.DataFrame", first: int = FIRST_TOKENS) -> "pd.DataFrame":
    """Per configuration and token index (0 = the first decode step): median step ms over its measured runs."""
    import pandas as pd

    from slmdeploy.harness.trace import read_trace

    rows = []
    for (model, quant, device), runs in _groups(frame).items():
        per_index: dict[int, list[int]] = {}
        for r in runs:
            path = Path(str(r.get("run_dir") or "")) / "trace.jsonl"
            if not path.is_file():
                continue
            for event in read_trace(path).iterations():
                if event.get("phase") == "decode" and isinstance(event.get("step_ns"), list):
                    for i, ns in enumerate(event["step_ns"][:first]):
                        if _ok(ns):
                            per_index.setdefault(i, []).append(ns)
        for i, values in sorted(per_index.items()):
            rows.append({"model": model, "quant": quant, "device": device, "token": i,
                         "step_ms": statistics.median(values) / 1e6, "samples": len(values)})
    return pd.DataFrame(rows, columns=["model", "quant", "device", "token", "step_ms", "samples"])


def survey_tables(frame: "pd.DataFrame") -> dict[str, "pd.DataFrame"]:
    """The data behind each survey figure, by figure id."""
    return {"latency": latency_table(frame), "memory": memory_table(frame), "tokens": token_table(frame),
            "kv": kv_table(frame)}


# -- figures -------------------------------------------------------------------------------------------------------

def latency_chart(table: "pd.DataFrame") -> str | None:
    """Decode ms/token and TTFT against parameters, a series per quantization (and device, if several)."""
    from slmdeploy.report.charts import _colors, _figure, _mark, _svg

    recs = [r for r in table.to_dict("records") if _ok(r.get("params"))]
    if not recs:
        return None
    several = len({r["device"] for r in recs}) > 1
    series = list(dict.fromkeys(f"{r['quant']}" + (f" @ {r['device']}" if several else "") for r in recs))
    palette = _colors(len(series))
    fig = _figure(10.0, 3.2)
    axes = fig.subplots(1, 2)
    drawn = False
    for ax, column, label in ((axes[0], "decode_ms_per_token", "decode ms / token"), (axes[1], "ttft_ms", "TTFT ms")):
        for i, name in enumerate(series):
            pts = sorted((r["params"] / 1e6, r[column]) for r in recs
                         if f"{r['quant']}" + (f" @ {r['device']}" if several else "") == name and _ok(r.get(column)))
            if pts:
                _mark(ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", ms=4, lw=1,
                              color=palette[i % len(palette)], label=name))
                drawn = True
        xs = [r["params"] / 1e6 for r in recs]
        if max(xs) > 10 * min(xs):
            ax.set_xscale("log")
        ax.set_xlabel("parameters (M)")
        ax.set_ylabel(label)
    if not drawn:
        return None
    axes[0].legend(fontsize=7, frameon=False)
    return _svg(fig)


def memory_chart(table: "pd.DataFrame") -> str | None:
    """Stacked bars: weights, KV cache, other; a bar per configuration, ordered by vocabulary size."""
    from slmdeploy.report.charts import _figure, _mark, _svg

    recs = [r for r in table.to_dict("records") if _ok(r.get("peak_mib"))]
    if not recs:
        return None
    fig = _figure(max(5.0, 0.5 * len(recs) + 2) + 2.2, 3.6, bottom=1.3, right=2.4)
    ax = fig.subplots()
    xs = range(len(recs))
    bottom = [0.0] * len(recs)

    def part(r: dict[str, Any], column: str) -> float:
        split = _ok(r.get("work_mib")) and _ok(r.get("before_load_mib"))
        if column == "other_mib":  # shown only where it cannot be split into work + before load
            return 0.0 if split or not _ok(r.get("other_mib")) else r["other_mib"]
        if column in ("work_mib", "before_load_mib"):
            return r[column] if split else 0.0
        return r[column] if _ok(r.get(column)) else 0.0

    for column, label, color in (("weights_mib", "weights", "#1f77b4"), ("kv_mib", "KV cache", "#ff7f0e"),
                                 ("work_mib", "activations, buffers (work)", "#2ca02c"),
                                 ("before_load_mib", "process before load", "#c7c7c7"),
                                 ("other_mib", "other (not split)", "#7f7f7f")):
        values = [part(r, column) for r in recs]
        if not any(values):
            continue
        _mark(ax.bar(xs, values, bottom=bottom, color=color, label=label, width=0.7))
        bottom = [b + v for b, v in zip(bottom, values)]
    _mark(ax.plot(list(xs), [r["peak_mib"] for r in recs], "k_", ms=14, label="peak RSS"))
    vocab = [(f"{r['vocab_size'] / 1000:.3g}k" if r["vocab_size"] >= 1000 else str(int(r["vocab_size"])))
             if _ok(r.get("vocab_size")) else "?" for r in recs]
    ax.set_xticks(list(xs), [f"{r['model']} {r['quant']}\nvocab {v}" for r, v in zip(recs, vocab)], rotation=60,
                  ha="right", fontsize=7)
    ax.set_ylabel("MiB")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _svg(fig)


def token_chart(table: "pd.DataFrame", max_series: int = MAX_SERIES) -> str | None:
    """Median decode step latency per token index, a line per configuration."""
    from slmdeploy.report.charts import _colors, _figure, _mark, _svg

    if table.empty:
        return None
    keys = list(dict.fromkeys(zip(table["model"], table["quant"], table["device"])))[:max_series]
    several = len({k[2] for k in keys}) > 1
    palette = _colors(len(keys))
    fig = _figure(10.0, 3.2, right=2.4)
    ax = fig.subplots()
    for i, key in enumerate(keys):
        part = table[(table["model"] == key[0]) & (table["quant"] == key[1]) & (table["device"] == key[2])]
        _mark(ax.plot(part["token"], part["step_ms"], lw=1, color=palette[i % len(palette)],
                      label=f"{key[0]} {key[1]}" + (f" @ {key[2]}" if several else "")))
    ax.set_xlabel("token index (0 = first decode step)")
    ax.set_ylabel("step ms")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _svg(fig)


def kv_chart(table: "pd.DataFrame") -> str | None:
    """KV cache MiB per model, coloured by attention type."""
    from matplotlib.patches import Patch

    from slmdeploy.report.charts import _figure, _mark, _svg

    recs = [r for r in table.to_dict("records") if _ok(r.get("kv_mib"))]
    if not recs:
        return None
    colors = {"MHA": "#d62728", "GQA": "#2ca02c", "MQA": "#1f77b4"}
    fig = _figure(max(5.0, 0.5 * len(recs) + 2), 3.4, bottom=1.2)
    ax = fig.subplots()
    _mark(ax.bar(range(len(recs)), [r["kv_mib"] for r in recs],
                 color=[colors.get(r.get("attention"), "#7f7f7f") for r in recs], width=0.7))
    ax.set_xticks(range(len(recs)), [f"{r['model']}\n{r.get('heads')}/{r.get('kv_heads')} heads" for r in recs],
                  rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("KV cache MiB (whole cache)")
    seen = list(dict.fromkeys(str(r.get("attention")) for r in recs))
    ax.legend(handles=[Patch(color=colors.get(a, "#7f7f7f"), label=a) for a in seen], fontsize=7, frameon=False)
    return _svg(fig)


CAPTIONS = {
    "survey-latency": "Decode latency per token (left) and time to first token (right) against the parameter "
                      "count, a line per quantization: medians over each configuration's runs.",
    "survey-memory": "Peak RSS (black mark) split into weights (model bytes), KV cache (whole static cache of "
                     "max_seq_len), what running the model added (activations, compute buffers) and what the process "
                     "held before load (interpreter, runtime); configurations ordered by vocabulary size.",
    "survey-tokens": f"Decode step latency at each of the first {FIRST_TOKENS} token indices (median over measured "
                     "runs): a cache that is read up to the position grows the step with the index.",
    "survey-kv": "KV cache size per model by attention type: MHA keeps keys/values for every head, GQA for "
                 "kv_heads groups, MQA for one.",
}


def survey_figures(tables: dict[str, "pd.DataFrame"]) -> list[tuple[str, str | None, str]]:
    """(chart id, SVG or None, caption) for each survey figure, in the page's order."""
    return [("survey-latency", latency_chart(tables["latency"]), CAPTIONS["survey-latency"]),
            ("survey-memory", memory_chart(tables["memory"]), CAPTIONS["survey-memory"]),
            ("survey-tokens", token_chart(tables["tokens"]), CAPTIONS["survey-tokens"]),
            ("survey-kv", kv_chart(tables["kv"]), CAPTIONS["survey-kv"])]


# -- text ----------------------------------------------------------------------------------------------------------

def _cell(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if _ok(value) else "-"
    return "-" if value is None else str(value)


TITLES = {"latency": "survey: latency vs parameters, per quantization",
          "memory": "survey: peak memory split (MiB), ordered by vocabulary",
          "tokens": f"survey: decode step ms per token index (first {FIRST_TOKENS})",
          "kv": "survey: KV cache by attention type"}


def rich_tables(tables: dict[str, "pd.DataFrame"]) -> list:
    """The tables behind the figures as rich Tables; the per-token table is wide (a column per index)."""
    from rich.table import Table

    out = []
    for name, df in tables.items():
        if df.empty:
            continue
        if name == "tokens":
            df = df.pivot_table(index=["model", "quant", "device"], columns="token", values="step_ms").reset_index()
            shown = [c for c in df.columns if not isinstance(c, int) or c < 10 or c % 10 == 9]
            df = df[shown]
        table = Table(title=TITLES[name], header_style="bold")
        for column in df.columns:
            table.add_column(str(column), justify="left" if column in ("model", "quant", "device", "attention", "basis")
                             else "right", overflow="fold")
        for r in df.to_dict("records"):
            table.add_row(*(_cell(v, 0 if name == "latency" and k == "params" else 2) for k, v in r.items()))
        out.append(table)
    return out
