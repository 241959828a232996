"""Runs grouped the way the SLM survey compares them: one configuration = (model, quantization, device).

The survey's figures and claims put models side by side, not workloads or threads: a
configuration's value is the median over its runs, its valid runs when any is valid (short
smoke runs are all flagged invalid, and then all of them count). docs/survey.md.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

Key = tuple[str, str, str]  # (model, quant, device)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a table cell, a chart or a fit can use."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def device_name(record: dict[str, Any]) -> str:
    return str(record.get("device_model") or record.get("device") or "?")


def configurations(frame: "pd.DataFrame") -> dict[Key, list[dict[str, Any]]]:
    """(model, quant, device) -> its runs' records (valid runs only when any run is valid)."""
    records = frame.to_dict("records")
    if "valid" in frame.columns and any(bool(r.get("valid")) for r in records):
        records = [r for r in records if bool(r.get("valid"))]
    out: dict[Key, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault((str(r.get("model") or "?"), str(r.get("quant") or "?"), device_name(r)), []).append(r)
    return out


def median_of(runs: list[dict[str, Any]], column: str) -> float | None:
    """The median of a column over runs, ignoring missing values."""
    good = [float(r.get(column)) for r in runs if is_number(r.get(column))]
    return statistics.median(good) if good else None


def first_of(runs: list[dict[str, Any]], column: str) -> Any:
    """The first present value of a column (facts that are the same for every run of a configuration)."""
    return next((r[column] for r in runs if r.get(column) is not None and r.get(column) == r.get(column)), None)
