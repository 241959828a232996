"""The memory table of `slmdeploy report`: each run's peak RSS split into weights, KV cache and the rest."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from slmdeploy.analysis.table import _fixed, _num


def memory_table(frame: pd.DataFrame) -> Table | None:
    """One row per run with a memory split; None when no run has one (nothing to show)."""
    if "mem_peak_mib" not in frame.columns:
        return None
    rows = [r for r in frame.to_dict("records") if _num(r.get("mem_peak_mib")) and
            (_num(r.get("mem_weights_mib")) or _num(r.get("mem_kv_mib")))]
    if not rows:
        return None
    table = Table(title="memory: peak RSS = weights + KV cache + other (MiB)", header_style="bold")
    for label in ("run", "peak", "weights", "KV cache", "KV positions", "other", "before load", "work", "basis"):
        table.add_column(label, justify="left" if label in ("run", "basis") else "right", overflow="fold")
    for r in rows:
        positions = r.get("mem_kv_positions")
        table.add_row(
            f"{r.get('model') or '-'} {r.get('quant') or ''} @ {r.get('device_model') or r.get('device') or '-'}",
            _fixed(r.get("mem_peak_mib"), 1), _fixed(r.get("mem_weights_mib"), 1), _fixed(r.get("mem_kv_mib"), 2),
            str(int(positions)) if _num(positions) else "-", _fixed(r.get("mem_other_mib"), 1),
            _fixed(r.get("mem_before_load_mib"), 1), _fixed(r.get("mem_work_mib"), 1), str(r.get("mem_basis") or "-"),
        )
    return table
