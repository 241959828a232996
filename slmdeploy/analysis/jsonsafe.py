"""Frames and values as strict JSON: a missing or non-finite number is ``null``, never bare NaN.

``json.dumps`` writes NaN/Infinity by default, which is not JSON (``jq`` and browsers reject
it). Frames are cleaned column-wise (fast for 10,000 runs); ``clean`` handles anything else.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """``frame.to_dict("records")`` with NaN, NaT, inf and pandas NA as None, numpy scalars as Python ones."""
    if frame.empty:
        return []
    floats = frame.select_dtypes(include=["floating"]).columns
    if len(floats):  # inf -> NaN, so that the one pass below turns both into None
        values = frame[floats].to_numpy(dtype=float)
        frame = frame.assign(**{c: values[:, i] for i, c in enumerate(floats)})
        frame[floats] = frame[floats].where(np.isfinite(values))
    out = frame.astype(object)
    return out.where(pd.notna(out), None).to_dict("records")


def clean(value: Any) -> Any:
    """``value`` with every non-finite float (also inside lists and dicts) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        return clean(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    return value
