"""The roofline table of `slmdeploy report`: bytes per decode token against the measured bandwidth."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from slmdeploy.analysis.table import _fixed, _num


def _mib(value) -> str:
    return f"{float(value) / (1 << 20):.2f}" if _num(value) else "-"


def roofline_table(frame: pd.DataFrame) -> Table | None:
    """One row per LLM run with a decode phase; None when no run has one (nothing to show)."""
    if "decode_bytes_per_token" not in frame.columns:
        return None
    rows = [r for r in frame.to_dict("records") if _num(r.get("decode_bytes_per_token"))]
    if not rows:
        return None
    table = Table(title="roofline: bytes read per decode token vs measured memory bandwidth", header_style="bold")
    for label in ("run", "weights MiB", "KV MiB/token", "MiB/token", "decode tok/s", "reads GB/s",
                  "bandwidth GB/s", "of bandwidth", "bytes counted"):
        table.add_column(label, justify="left" if label in ("run", "bytes counted") else "right")
    for r in rows:
        source = r.get("bandwidth_source")
        bandwidth = _fixed(r.get("bandwidth_gbps"), 1) + (" (device)" if source == "device" else "")
        fraction = r.get("decode_bandwidth_fraction")
        table.add_row(
            f"{r.get('model') or '-'} {r.get('quant') or ''} @ {r.get('device_model') or r.get('device') or '-'}",
            _mib(r.get("decode_weight_bytes")), _mib(r.get("decode_kv_bytes_per_token")),
            _mib(r.get("decode_bytes_per_token")), _fixed(r.get("decode_tps"), 2),
            _fixed(r.get("decode_achieved_gbps"), 2), bandwidth if _num(r.get("bandwidth_gbps")) else "-",
            f"{fraction * 100:.1f}%" if _num(fraction) else "-", str(r.get("decode_bytes_basis") or "-"),
        )
    return table
