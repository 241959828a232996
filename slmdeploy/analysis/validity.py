"""Is a run's measurement trustworthy? A verdict per run, with the reasons when it is not.

A number from a run that was throttled, too short, started hot or shared the device with a
leftover harness is a number about the conditions, not about the model. Such runs are kept
(their data may still explain something) but flagged, and comparisons leave them out unless
asked (``report --include-invalid``). A run is valid only if all of these hold:

- it completed (``status`` complete), and its run.json and trace were readable and clean
  (``validate.check_trace``: no skipped line, no impossible value);
- at least ``min_runs`` measured runs (default 3): a median and a bootstrap interval of fewer
  values say nothing about the spread;
- at least ``min_measured_s`` of measured time in all (default 1 s): DVFS governors ramp a
  core's frequency over tens of milliseconds and the scheduler's time slice is a few ms, so
  below about a second a single frequency step or preemption is a large share of what was
  timed; one second keeps that share under a few percent while a tiny CI model still fits;
- no throttling detected in its telemetry (``metrics.throttling``);
- when the bench waited for a cooldown (run.json ``cooldown``), the run started below the
  limit (the last wait's ``end_c`` < ``below_c``);
- no stray harness was running on the device when the run started (run.json
  ``strays_killed``, the count ``devices.clean.kill_strays`` found and killed).

Checks work on a flat record (``records.record``, a row of ``load_runs`` or the results
database), so runs stored by an older slmdeploy get a verdict from the fields they have: a
missing field is a check that cannot fail, except ``status`` and ``measured_runs`` (every
record has them; without them nothing says the run measured anything).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

MIN_RUNS = 3
MIN_MEASURED_S = 1.0
REASON_SEPARATOR = "; "


@dataclass(frozen=True)
class Thresholds:
    """What a valid run needs (see the module docstring for why these defaults)."""

    min_runs: int = MIN_RUNS
    min_measured_s: float = MIN_MEASURED_S


DEFAULT = Thresholds()


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        return REASON_SEPARATOR.join(self.reasons)


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (bool, np.bool_)) or value is pd.NA:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _flag(value: Any) -> bool:
    """True for a set flag however it was stored (bool, numpy bool, 1 / 1.0); missing is False."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return not isinstance(value, str) and _number(value) == 1


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def verdict(row: Mapping[str, Any], thresholds: Thresholds = DEFAULT) -> Verdict:
    """The verdict for one run record; ``reasons`` empty when valid."""
    reasons: list[str] = []
    unreadable = _text(row.get("run_json_problem"))
    if unreadable:
        return Verdict(False, (unreadable,))
    status = _text(row.get("status"))
    if status != "complete":
        reasons.append(f"run is {status or 'of unknown status'}, not complete")
    trace_problem = _text(row.get("trace_problem"))
    if trace_problem:
        reasons.append(trace_problem)
    measured = _number(row.get("measured_runs"))
    if measured is None or measured < thresholds.min_runs:
        reasons.append(f"{int(measured or 0)} measured run{'' if measured == 1 else 's'} "
                       f"(at least {thresholds.min_runs} needed)")
    seconds = _number(row.get("measured_s"))
    if seconds is not None and seconds < thresholds.min_measured_s:
        reasons.append(f"{seconds:.3g} s measured in all (at least {thresholds.min_measured_s:g} s needed)")
    if _flag(row.get("thermal_throttled")):
        cap = _number(row.get("thermal_freq_cap_ratio"))
        low = _number(row.get("thermal_min_freq_ratio"))
        detail = (f"a core's frequency cap fell to {cap:.0%}" if cap is not None and cap < 1
                  else f"a core's frequency fell to {low:.0%} while it heated up" if low is not None else "")
        reasons.append("throttling detected" + (f" ({detail})" if detail else ""))
    start, limit = _number(row.get("start_temp_c")), _number(row.get("cooldown_below_c"))
    if start is not None and limit is not None and start >= limit:
        reasons.append(f"started at {start:.1f} °C, not below the cooldown limit {limit:g} °C")
    strays = _number(row.get("strays_killed"))
    if strays:
        n = int(strays)
        reasons.append(f"{n} stray harness{'es' if n > 1 else ''} running on the device at the start (killed)")
    return Verdict(not reasons, tuple(reasons))


def cooldown_fields(cooldown: Any) -> dict[str, float | None]:
    """run.json ``cooldown`` (a list of waits, one per attempt) -> the last wait's limit and end temperature.

    The last wait is the one right before the attempt whose trace is kept; its ``end_c`` is the
    temperature the run started at.
    """
    waits = [c for c in cooldown if isinstance(c, dict)] if isinstance(cooldown, list) else []
    if not waits:
        return {}
    last = waits[-1]
    return {"cooldown_below_c": _number(last.get("below_c")), "start_temp_c": _number(last.get("end_c"))}


def apply(frame: pd.DataFrame, thresholds: Thresholds = DEFAULT) -> pd.DataFrame:
    """``frame`` with ``valid`` (bool) and ``invalid_reasons`` ('; '-joined, '' when valid), recomputed."""
    if frame.empty:
        return frame.assign(valid=pd.Series(dtype=bool), invalid_reasons=pd.Series(dtype=object))
    columns = [c for c in ("run_json_problem", "status", "trace_problem", "measured_runs", "measured_s",
                           "thermal_throttled", "thermal_freq_cap_ratio", "thermal_min_freq_ratio",
                           "start_temp_c", "cooldown_below_c", "strays_killed") if c in frame.columns]
    rows = (dict(zip(columns, values)) for values in zip(*(frame[c].tolist() for c in columns)))
    verdicts = [verdict(row, thresholds) for row in rows]
    return frame.assign(valid=[v.valid for v in verdicts], invalid_reasons=[v.text for v in verdicts])


def valid_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The valid runs of ``frame`` (all of them when it has no verdict)."""
    if "valid" not in frame.columns or frame.empty:
        return frame
    return frame[frame["valid"].fillna(False).astype(bool)]
