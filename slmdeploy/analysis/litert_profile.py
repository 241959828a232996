"""Op-level profiles of LiteRT models: the native harness's ``--litert-profile`` JSON as a DataFrame.

The native harness enables LiteRT's profiler (runtime option ``enable_profiling``) and
writes the events of the measured runs (``slmdeploy.litert-profile/1``, schema in
docs/native-harness.md). This module turns them into the table ``etdump.op_breakdown``
makes for ExecuTorch -- same columns (``etdump.COLUMNS``), same categories -- so one
renderer and ``etdump.summary`` serve both runtimes:

- ``operator`` rows: TFLite kernels the interpreter ran outside any delegate
  (``FULLY_CONNECTED``, ``EMBEDDING_LOOKUP``, ...), one row per op type;
- ``delegated_op`` rows: the ops a delegate profiled (XNNPACK reports e.g.
  ``Fully Connected (NC, F32) GEMM``);
- ``delegate_call`` rows (``XNNPACK call``): per call, the sum of that delegate's op times.
  LiteRT 2.3 records no event for the delegate kernel itself (its ops are reported as
  operator-level events instead), so this row is derived, not measured -- it makes
  ``operator`` + ``delegate_call`` partition the time inside ``Invoke`` as in an ETDump;
- ``runtime`` rows: LiteRT's own work around the interpreter (``LiteRT::Run[buffer
  registration]``, ``LiteRT::Run[Buffer sync]``).

``share`` is of the execute time: per call, the span the profiler saw from its first to its
last top-level event (``LiteRT::Run[...]`` and ``Invoke``), summed over the calls kept.
Times have the profiler's 1 µs resolution (an op under 1 µs reads 0).

    from slmdeploy.analysis.litert_profile import op_breakdown
    from slmdeploy.analysis.etdump import summary
    df = op_breakdown("runs/x/litert_profile.json", phase="decode")
    print(df.head(10)); print(summary(df))
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmdeploy.analysis.etdump import COLUMNS
from slmdeploy.errors import SlmdeployError
from slmdeploy.harness.trace import Trace, read_trace

if TYPE_CHECKING:
    import pandas as pd

FORMAT = "slmdeploy.litert-profile/1"
INVOKE = "Invoke"  # the interpreter's whole-invocation event (kind "default")
DELEGATE_KINDS = ("delegate_profiled_operator", "delegate_operator")


class LiteRtProfileError(SlmdeployError):
    """A --litert-profile file that is missing, unreadable or does not match its trace."""


def load_profile(path: str | Path) -> dict[str, Any]:
    """The profile as written by the harness (``format``, run facts, ``calls``, ``events``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LiteRtProfileError(f"no LiteRT profile at {path}") from None
    except (OSError, ValueError) as err:
        raise LiteRtProfileError(f"cannot read the LiteRT profile {path}: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise LiteRtProfileError(f"{path} is not a {FORMAT} file (format: {found!r})")
    return data


def events_frame(profile: str | Path | dict[str, Any]) -> "pd.DataFrame":
    """One row per event, with its call's ``run``, ``phase`` and ``signature``."""
    import pandas as pd

    data = profile if isinstance(profile, dict) else load_profile(profile)
    calls = pd.DataFrame(data["calls"], columns=["call", "run", "phase", "signature", "first_event", "events"])
    events = pd.DataFrame(data["events"], columns=["name", "kind", "source", "node", "subgraph", "call",
                                                   "start_us", "elapsed_us"])
    return events.merge(calls[["call", "run", "phase", "signature"]], on="call", how="left")


def _delegate_backend(data: dict[str, Any]) -> str:
    # LiteRT's CPU accelerator is XNNPACK; with --accelerator gpu a delegated op may be either.
    return "XNNPACK" if data.get("accelerator", "cpu") == "cpu" else "delegate"


def _check_trace(data: dict[str, Any], trace: str | Path | Trace) -> None:
    t = trace if isinstance(trace, Trace) else read_trace(trace)
    measured = 0
    for event in t.iterations(include_warmup=False):
        measured += 1 if event.get("phase") == "prefill" else len(event.get("step_ns", []))
    if measured != len(data["calls"]):
        raise LiteRtProfileError(f"the trace has {measured} measured calls but the profile {len(data['calls'])}: "
                                 "not the same run.")


def op_breakdown(
    profile: str | Path,
    *,
    phase: str | None = None,
    trace: str | Path | Trace | None = None,
) -> "pd.DataFrame":
    """One row per op type / delegate of a LiteRT profile, sorted by total time (columns: ``COLUMNS``).

    ``phase`` ("prefill", "decode", "forward") keeps the calls of one phase (the profile
    labels each call itself; warm-up runs are never profiled). ``trace``, the run's trace,
    is optional: it only checks that profile and trace come from the same run.
    ``df.attrs`` holds the totals ``etdump.summary`` reports (``execute_ms``,
    ``executes``) plus ``invoke_ms`` (inside the interpreter's ``Invoke``).
    """
    import pandas as pd

    data = load_profile(profile)
    if trace is not None:
        _check_trace(data, trace)
    calls = data["calls"]
    phases = sorted({c["phase"] for c in calls})
    if phase is not None:
        calls = [c for c in calls if c["phase"] == phase]
        if not calls:
            raise LiteRtProfileError(f"the profile has no {phase!r} calls (phases: {phases}).")
    frame = events_frame(data)
    frame = frame[frame["call"].isin({c["call"] for c in calls})].copy()
    frame["ms"] = frame["elapsed_us"] / 1000.0
    backend = _delegate_backend(data)

    top = frame[frame["kind"] == "default"]
    timed = top.dropna(subset=["start_us"])
    ends = (timed["start_us"] + timed["elapsed_us"]).groupby(timed["call"]).max()
    spans = ends - timed.groupby("call")["start_us"].min()  # per call: first start to last end, µs
    is_invoke = top["name"] == INVOKE
    invoke_ms = float(top[is_invoke]["ms"].sum())
    execute_ms = float(spans.sum()) / 1000.0 if len(spans) else invoke_ms

    # One row per event that becomes part of the table: (op, category, backend, instance, call, ms).
    runtime = top[~is_invoke].assign(op=top["name"], category="runtime", backend=None, instance=top["name"])
    ops = frame[frame["kind"] == "operator"]
    delegated = frame[frame["kind"].isin(DELEGATE_KINDS)]
    instance = lambda df: list(zip(df["subgraph"], df["node"]))  # noqa: E731
    parts = [
        runtime,
        ops.assign(op=ops["name"], category="operator", backend=None, instance=instance(ops)),
        delegated.assign(op=delegated["name"], category="delegated_op", backend=backend,
                         instance=instance(delegated)),
    ]
    if len(delegated):  # derived: LiteRT records no event for the delegate kernel itself
        per_call = delegated.groupby("call", as_index=False).agg(ms=("ms", "sum"))
        parts.append(per_call.assign(op=f"{backend} call", category="delegate_call", backend=backend, instance=None))
    rows = pd.concat([p[["op", "category", "backend", "instance", "ms"]] for p in parts], ignore_index=True)
    rows["backend"] = rows["backend"].astype(object)
    grouped = rows.groupby(["op", "category", "backend"], dropna=False, sort=False)
    df = grouped.agg(instances=("instance", "nunique"), calls=("ms", "size"), total_ms=("ms", "sum"),
                     mean_ms=("ms", "mean"), p50_ms=("ms", "median")).reset_index()
    delegate_rows = df["category"] == "delegate_call"
    df.loc[delegate_rows, "instances"] = delegated["subgraph"].nunique()  # the subgraphs it ran in
    df["aten_ops"] = ""
    df["share"] = df["total_ms"] / execute_ms if execute_ms else 0.0
    df = df[COLUMNS].sort_values("total_ms", ascending=False, kind="stable").reset_index(drop=True)
    df.attrs.update(
        execute_ms=execute_ms,
        executes=len(calls),
        invoke_ms=invoke_ms,
        phase=phase,
        runtime="tflite",
        runs=data.get("runs"),
    )
    return df
