"""What the HTML report shows, as plain tables: configuration rows, and the runs worth a chart each.

The rows are ``analysis.summary.summarize_rows``' (the one row definition, ``analysis.rows``,
that ``report`` and the CI gate use too); ``page_rows`` only adds what the page shows besides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slmdeploy.analysis.configurations import is_number

if TYPE_CHECKING:
    import pandas as pd

PAGE_COLUMNS = ("model_size", "params", "harness")  # shown (size chart) besides the identity, from a row's first run


def page_rows(frame: "pd.DataFrame") -> "pd.DataFrame":
    """``summarize_rows`` over every run of ``frame``, valid or not (the page marks an invalid row
    rather than hiding its numbers), with ``PAGE_COLUMNS`` and a short ``label`` per row; the
    ``valid`` and ``invalid_reasons`` columns only when the runs carry a verdict."""
    from slmdeploy.analysis.summary import summarize_rows

    rows = summarize_rows(frame, include_invalid=True, extra_columns=PAGE_COLUMNS)
    if "valid" not in frame.columns:
        rows = rows.drop(columns=["valid", "invalid_reasons"])
    rows["label"] = row_labels(rows) if not rows.empty else []
    return rows


def row_labels(rows: "pd.DataFrame", *, without: tuple[str, ...] = ()) -> list[str]:
    """A short name per row: only the identity fields that differ between rows (and not in ``without``);
    the target and delegates only when the rest leaves two rows with one name."""
    labels = _labels(rows, ("model", "quant", "runtime", "device", "threads", "workload"), without)
    context = rows[[w for w in without if w in rows.columns]].astype(str).agg("|".join, axis=1) if without else None
    keys = [f"{label}|{c}" for label, c in zip(labels, context)] if context is not None else labels
    if len(set(keys)) < len(keys):
        labels = _labels(rows, ("model", "quant", "runtime", "delegates", "target", "device", "threads", "workload"),
                         without)
    return labels


def _labels(rows: "pd.DataFrame", fields: tuple[str, ...], without: tuple[str, ...]) -> list[str]:
    shown = [k for k in fields if k in rows.columns and k not in without and rows[k].astype(str).nunique() > 1]
    labels = []
    for r in rows.to_dict("records"):
        parts = []
        for k in shown:
            value = r.get(k)
            if k == "threads":
                parts.append(f"{int(value)}t" if is_number(value) else "threads ?")
            elif k == "workload":
                parts.append(workload_label(value))
            else:
                parts.append(str(value))
        labels.append(" ".join(parts) or str(r.get("model") or "run"))
    return labels


def workload_label(value: Any) -> str:
    """``pp16+tg8`` for an LLM workload, ``forward x10`` for a generic one."""
    from slmdeploy.analysis.rows import json_object

    w = json_object(value)
    if not w:
        return "-"
    if w.get("gen_tokens") or w.get("prompt_tokens"):
        return f"pp{w.get('prompt_tokens', 0)}+tg{w.get('gen_tokens', 0)}"
    return f"forward x{w.get('iterations', '?')}"


def pick_runs(frame: "pd.DataFrame", limit: int) -> tuple["pd.DataFrame", str | None]:
    """The runs that get a chart each: all of them up to ``limit``, else the ``limit`` slowest
    (highest median decode step, else TTFT or forward time), with a sentence saying so."""
    if frame.empty or "run_dir" not in frame:
        return frame.iloc[0:0], None
    with_dir = frame[frame["run_dir"].notna()]
    if len(with_dir) <= limit:
        return with_dir, None
    for metric in ("decode_step_ms_median", "ttft_ms_median", "forward_ms_median"):
        if metric in with_dir and with_dir[metric].notna().any():
            worst = with_dir.sort_values(metric, ascending=False, na_position="last", kind="stable").head(limit)
            what = {"decode_step_ms_median": "highest median decode step", "ttft_ms_median": "highest median TTFT",
                    "forward_ms_median": "highest median forward time"}[metric]
            return worst, (f"Per-run charts show the {limit} slowest of {len(with_dir)} runs ({what}); "
                           "the summary and comparison charts cover every run.")
    return with_dir.head(limit), (f"Per-run charts show the first {limit} of {len(with_dir)} runs; "
                                  "the summary and comparison charts cover every run.")
