"""Rows: which runs measured the same configuration, and their pooled per-run values.

The one definition of a row, used by ``summary.summarize_rows`` (``slmdeploy report``, text,
JSON and HTML) and by the CI gate (``slmdeploy compare``), so that a report and a gate never
disagree on what was measured twice. A row is one measured configuration: the same model,
target, device, workload and thread count (``row_key``). How a run was measured is not part of
it: the workload's ``runs``, ``warmup`` and ``telemetry_interval_ms`` (a 10-run baseline is the
same configuration as a 5-run candidate; a telemetry period does not change what was timed).
``pooled_rows`` groups a frame of runs by that key and pools their per-measured-run values
(the ``samples`` column, see ``analysis.samples``). docs/statistics.md, "Rows".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

# How a run was measured, not what; threads is kept apart (the count the runtime actually used).
NOT_IDENTITY = ("warmup", "runs", "telemetry_interval_ms", "threads")
# The run fields ``row_key`` reads: a row's first run shows them (``summarize_rows``' identity columns).
KEY_COLUMNS = ("model", "runtime", "target", "quant", "delegates", "accelerator", "device_model", "device",
               "workload", "threads")
DEVICE_BY = ("spec", "model")


@dataclass(frozen=True, order=True)
class RowKey:
    """What must be equal for two runs to be one configuration (docs/ci-gate.md, "Matching")."""

    model: str
    target: str
    device: str
    workload: str  # JSON, keys sorted, without how-it-was-measured keys (NOT_IDENTITY)
    threads: str

    def label(self) -> str:
        return " · ".join((self.model, self.target, self.device, _workload_label(self.workload), f"{self.threads}t"))

    def as_dict(self) -> dict[str, str]:
        return {"model": self.model, "target": self.target, "device": self.device,
                "workload": self.workload, "threads": self.threads, "label": self.label()}


def _workload_label(workload: str) -> str:
    w = json_object(workload) or {}
    if "prompt_tokens" not in w:
        return "-" if not w else ",".join(f"{k}={v}" for k, v in w.items())
    text = f"pp{w.get('prompt_tokens')}+tg{w.get('gen_tokens')}"
    extra = [f"{k}={v}" for k, v in w.items()
             if k not in ("prompt_tokens", "gen_tokens", "iterations", "seed", "inputs") or
             (k == "seed" and v) or (k == "inputs" and v)]
    return text + (f" ({', '.join(extra)})" if extra else "")


def json_object(raw: Any) -> dict[str, Any] | None:
    """A stored JSON object (``samples``, ``workload``) as a dict: a dict as is, missing/empty -> {},
    None when it is text that is not a JSON object (the caller decides whether that is an error)."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def present(value: Any) -> bool:
    """Not None/NaN/NA/empty: a record from a database has NaN where a run lacks a field."""
    if value is None or (isinstance(value, str) and not value):
        return False
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array: present
        return True


def text(value: Any, default: str = "-") -> str:
    """A field as key text: missing -> ``default``, 4.0 -> "4"."""
    if not present(value):
        return default
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _target(run: Mapping[str, Any], device_by: str = "spec") -> str:
    target = text(run.get("target"), "")
    if not target:
        target = "/".join(text(run.get(k)) for k in ("runtime", "quant", "delegates"))
    if present(run.get("accelerator")):
        target += f" @{run['accelerator']}"
    return target


def _device(run: Mapping[str, Any], device_by: str = "spec") -> str:
    spec, model = text(run.get("device")), text(run.get("device_model"), "")
    if device_by == "model":
        return model or spec
    return f"{spec} ({model})" if model and model != spec else spec


def _workload_threads(run: Mapping[str, Any], device_by: str = "spec") -> tuple[str, str]:
    workload = json_object(run.get("workload")) or {}
    threads = run.get("threads")
    if not present(threads):
        threads = workload.get("threads")
    workload = {k: v for k, v in sorted(workload.items()) if k not in NOT_IDENTITY}
    return json.dumps(workload, sort_keys=True), text(threads)


def _model(run: Mapping[str, Any], device_by: str = "spec") -> str:
    return text(run.get("model"))


# The key's parts and the run fields each reads (group_runs computes a part once per distinct fields).
_PARTS = ((_model, ("model",)), (_target, ("target", "runtime", "quant", "delegates", "accelerator")),
          (_device, ("device", "device_model")), (_workload_threads, ("workload", "threads")))


def row_key(run: Mapping[str, Any], device_by: str = "spec") -> RowKey:
    """A run record's identity. ``device_by="model"`` matches any phone of the same model
    (a farm of identical phones); ``"spec"`` (default) the very device (serial or address) and model.
    The target falls back to runtime/quant/delegates (+ @accelerator); threads is the count the
    runtime used (the record's ``threads``), else the workload's requested count."""
    model, target, device, (workload, threads) = (part(run, device_by) for part, _ in _PARTS)
    return RowKey(model, target, device, workload, threads)


def _distinct(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(the combination of ``columns`` each run has, as a code; the first run of each code)."""
    if not columns:
        return np.zeros(len(frame), dtype=int), np.zeros(1, dtype=int)
    codes = np.column_stack([pd.factorize(frame[k], use_na_sentinel=False)[0] for k in columns])
    _, first, code_of = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return np.asarray(code_of).ravel(), first


def group_runs(frame: pd.DataFrame, device_by: str = "spec") -> list[tuple[RowKey, list[int]]]:
    """(key, positions of its runs in ``frame``) per row, rows in the order of their first run.

    Each part of ``row_key`` is computed once per distinct combination of the fields it reads
    (factorised, NaN a value of its own), not once per run: 10,000 runs group in milliseconds.
    """
    if frame.empty:
        return []
    part_codes, part_values = [], []
    for part, fields in _PARTS:
        columns = [k for k in fields if k in frame.columns]
        code_of, first = _distinct(frame, columns)
        cells = [frame[k].iloc[first].tolist() for k in columns]
        values = [part(dict(zip(columns, row)), device_by) for row in zip(*cells)] if columns else [part({}, device_by)]
        same, uniques = pd.factorize(pd.Series(values, dtype=object))  # combinations giving one part value
        part_codes.append(same[code_of])
        part_values.append(list(uniques))
    _, first, row_of = np.unique(np.column_stack(part_codes), axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # rows in order of their first run
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    row_of = rank[np.asarray(row_of).ravel()]
    members = _split(np.argsort(row_of, kind="stable").tolist(), np.bincount(row_of))
    keys = []
    for run in np.asarray(first)[order].tolist():
        model, target, device, (workload, threads) = (part_values[p][part_codes[p][run]] for p in range(len(_PARTS)))
        keys.append(RowKey(model, target, device, workload, threads))
    return list(zip(keys, members))


def _split(items: Any, counts: np.ndarray) -> list[Any]:
    """``items`` cut into consecutive pieces of ``counts`` (np.split costs far more per piece)."""
    ends = np.cumsum(counts).tolist()
    return [items[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def _floats(values: list[Any], owners: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Stored sample values as floats with their rows; anything not a finite number is left out."""
    owner = np.asarray(owners, dtype=int)
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        number = np.array([isinstance(v, (int, float)) and not isinstance(v, bool) for v in values], dtype=bool)
        arr, owner = np.asarray([v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)],
                                dtype=float), owner[number]
    finite = np.isfinite(arr)
    return arr[finite], owner[finite]


@dataclass
class PooledRow:
    """One row of a frame: its runs, the ones pooled, and their per-run values pooled per metric."""

    key: RowKey
    members: list[int]  # positions in the frame of every run of the row, in frame order
    used: list[int]  # the members whose samples were pooled
    values: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> pooled finite values, run order
    unreadable: list[int] = field(default_factory=list)  # used members whose samples text is not a JSON object


def pooled_rows(frame: pd.DataFrame, metrics: Iterable[str] | None = None, *, use: Any = None,
                device_by: str = "spec") -> list[PooledRow]:
    """The rows of ``frame`` (``load_runs``' output) with the per-run values of their runs pooled.

    ``use``: a boolean per run of ``frame`` (e.g. ``valid``); only those runs' samples are pooled
    (default: all). ``metrics``: the metrics pooled (default: every one the samples hold); a
    metric no used run measured has an empty array. Values keep the frame's run order. Each
    run's samples are parsed once and each metric's values split into rows at once, so the
    cost is the JSON parsing, not a loop per row and metric.
    """
    groups = group_runs(frame, device_by)
    rows = [PooledRow(key, members, members if use is None else [i for i in members if use[i]])
            for key, members in groups]
    row_of = np.empty(len(frame), dtype=int)
    for r, (_, members) in enumerate(groups):
        row_of[members] = r
    samples = frame["samples"].tolist() if "samples" in frame.columns else [None] * len(frame)
    names = list(metrics) if metrics is not None else None
    values: dict[str, list[Any]] = {m: [] for m in names or ()}
    owners: dict[str, list[int]] = {m: [] for m in names or ()}
    for i in (range(len(frame)) if use is None else np.flatnonzero(np.asarray(use, dtype=bool)).tolist()):
        data = json_object(samples[i])
        if data is None:
            rows[row_of[i]].unreadable.append(i)
            continue
        r = int(row_of[i])
        for m, vals in data.items():
            if not isinstance(vals, list) or (names is not None and m not in values):
                continue
            values.setdefault(m, []).extend(vals)
            owners.setdefault(m, []).extend([r] * len(vals))
    for m in values:
        arr, owner = _floats(values[m], owners[m])
        order = np.argsort(owner, kind="stable")  # by row; within a row, in run order
        pieces = _split(arr[order], np.bincount(owner, minlength=len(rows)))
        for row, piece in zip(rows, pieces):
            row.values[m] = piece
    return rows
