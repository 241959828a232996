"""A run as a Chrome trace-event JSON file: open it in ui.perfetto.dev (or chrome://tracing).

Format: ``{"traceEvents": [...], "displayTimeUnit": "ms"}`` with timestamps in µs.

- Thread "harness": complete (``X``) slices ``load``, then per run (warm-ups labelled
  ``warmup N``) a ``run N`` slice holding its ``prefill`` and ``decode`` (or ``forward``)
  slices, which hold one slice per decode step / invocation. Where the run was profiled
  (``bench --profile``: an ETDump or a LiteRT profile) each execute's ops are nested inside
  its step (prefill: inside the prefill slice) at the offsets the profiler measured.
- Counter (``C``) tracks: ``cpuN MHz`` (``cur`` and ``cap`` = scaling_max_freq, which a
  thermal governor lowers), ``temperature °C`` (one series per thermal zone), ``memory MiB``
  (RSS and its high-water mark after each iteration).
- Metadata (``M``) events name the process (model, device) and the thread.

The harnesses record no start time for an iteration, only when it was written (``t_ns``)
and its durations: slices are reconstructed from those (``timeline.layout``): each ends
when its event was written and its steps are laid out back to back from its start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmdeploy.analysis.records import RUN_FILE, TRACE_FILE
from slmdeploy.errors import SlmdeployError
from slmdeploy.harness.trace import read_trace
from slmdeploy.report.timeline import Slice, Timeline, layout

PID = 1
HARNESS_CATEGORIES = {"load", "run", "prefill", "decode", "forward", "step"}  # op slices: the rest
HARNESS_TID = 1


@dataclass(frozen=True)
class PerfettoResult:
    path: Path
    slices: int
    op_slices: int
    counters: int
    note: str | None  # why ops were not nested, when a profile exists but does not match


def _us(ns: int | float) -> float:
    return round(ns / 1000, 3)


def _x(name: str, cat: str, start_ns: int, dur_ns: int, args: dict[str, Any] | None = None) -> dict[str, Any]:
    event = {"name": name, "cat": cat, "ph": "X", "ts": _us(start_ns), "dur": _us(max(dur_ns, 0)),
             "pid": PID, "tid": HARNESS_TID}
    if args:
        event["args"] = {k: v for k, v in args.items() if v is not None}
    return event


def _counter(name: str, t_ns: int, values: dict[str, float]) -> dict[str, Any]:
    return {"name": name, "ph": "C", "ts": _us(t_ns), "pid": PID, "args": values}


def _metadata(meta: dict[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    label = " ".join(str(meta.get(k)) for k in ("model", "quant", "runtime") if meta.get(k))
    device = meta.get("device_model") or meta.get("device") or "?"
    name = f"{label or run_dir.name} on {device}"
    return [
        {"name": "process_name", "ph": "M", "pid": PID, "args": {"name": name}},
        {"name": "process_labels", "ph": "M", "pid": PID, "args": {"labels": str(meta.get("run_id") or run_dir.name)}},
        {"name": "thread_name", "ph": "M", "pid": PID, "tid": HARNESS_TID, "args": {"name": "harness"}},
        {"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": HARNESS_TID, "args": {"sort_index": 0}},
    ]


def _counters(timeline: Timeline) -> list[dict[str, Any]]:
    out = []
    for sample in timeline.telemetry:
        cpus = sorted(set(sample["cpu_khz"]) | set(sample["cpu_max_khz"]), key=lambda c: (len(c), c))
        for cpu in cpus:
            values = {}
            if isinstance(sample["cpu_khz"].get(cpu), (int, float)):
                values["cur"] = sample["cpu_khz"][cpu] / 1000
            if isinstance(sample["cpu_max_khz"].get(cpu), (int, float)):
                values["cap"] = sample["cpu_max_khz"][cpu] / 1000
            out.append(_counter(f"{cpu} MHz", sample["t_ns"], values))
        temps = {zone: mc / 1000 for zone, mc in sample["thermal_mc"].items() if isinstance(mc, (int, float))}
        if temps:
            out.append(_counter("temperature °C", sample["t_ns"], temps))
    for point in timeline.memory:
        values = {"rss": round(point["rss_kib"] / 1024, 3)}
        if point.get("hwm_kib") is not None:
            values["hwm"] = round(point["hwm_kib"] / 1024, 3)
        out.append(_counter("memory MiB", point["t_ns"], values))
    return out


def _nest(ops: list[tuple[str, str, int, int]], parent: Slice) -> list[dict[str, Any]]:
    """Op spans (name, category, start, dur) -> X events properly nested inside ``parent``.

    Profiler clocks round differently from the harness's: each op is clipped to the span
    that encloses it (the parent step, or the op it starts inside), so nesting is exact.
    """
    out: list[dict[str, Any]] = []
    stack: list[int] = [parent.end_ns]
    for name, cat, start, dur in sorted(ops, key=lambda o: (o[2], -o[3])):
        start = max(start, parent.start_ns)
        while len(stack) > 1 and start >= stack[-1]:
            stack.pop()
        if start >= stack[-1]:
            continue  # starts after the step ended: a clock mismatch, not a nested op
        end = min(start + max(dur, 0), stack[-1])
        out.append(_x(name, cat, start, end - start))
        stack.append(end)
    return out


def _executes(timeline: Timeline, include_warmup: bool) -> list[Slice]:
    """The slices one ``Method::execute`` / LiteRT call each matches, in execution order."""
    out = []
    for s in timeline.slices:
        if s.warmup and not include_warmup:
            continue
        if s.kind == "prefill" or s.kind == "step":
            out.append(s)
    return out


def _etdump_ops(path: Path, timeline: Timeline) -> tuple[list[dict[str, Any]], str | None]:
    """Each execute's events at their offset from its ``Method::execute`` start.

    The Inspector keeps each event's start ticks (``_start_time``, one per execute; ns with
    ExecuTorch's POSIX platform layer) beside its durations (``perf_data.raw``, ms).
    """
    from slmdeploy.analysis.etdump import _op_name, load_inspector

    inspector = load_inspector(path)
    block = next((b for b in inspector.event_blocks if b.name != "Default"), None)
    if block is None:
        return [], f"{path.name} holds no executes"
    executes = _executes(timeline, include_warmup=True)
    method = next((e for e in block.events if e.name == "Method::execute"), None)
    starts = getattr(method, "_start_time", None) if method is not None else None
    if not starts:
        return [], f"this ExecuTorch's Inspector gives no start times for {path.name}: ops not nested"
    if len(starts) != len(executes):
        return [], f"{path.name} has {len(starts)} executes but the trace {len(executes)}: ops not nested"
    per_exec: list[list[tuple[str, str, int, int]]] = [[] for _ in executes]
    for event in block.events:
        ticks = getattr(event, "_start_time", None)
        if event.name in ("Method::execute", "OPERATOR_CALL") or not ticks or event.perf_data is None:
            continue
        op, category = _op_name(event.name, bool(event.is_delegated_op))
        if category == "delegate_call":
            op = f"{event.delegate_backend_name or 'delegate'} call"
        for k, (start, ms) in enumerate(zip(ticks, event.perf_data.raw)):
            if k < len(executes):
                offset = int(start) - int(starts[k])
                per_exec[k].append((op, category, executes[k].start_ns + offset, int(ms * 1e6)))
    out = []
    for parent, ops in zip(executes, per_exec):
        out += _nest(ops, parent)
    return out, None


def _litert_ops(path: Path, timeline: Timeline) -> tuple[list[dict[str, Any]], str | None]:
    from slmdeploy.analysis.litert_profile import load_profile

    data = load_profile(path)
    executes = _executes(timeline, include_warmup=False)  # the profile holds the measured calls only
    calls = data.get("calls", [])
    if len(calls) != len(executes):
        return [], f"{path.name} has {len(calls)} calls but the trace {len(executes)} measured executes: ops not nested"
    events = data.get("events", [])
    out = []
    for call, parent in zip(calls, executes):
        mine = events[call["first_event"]: call["first_event"] + call["events"]]
        timed = [e for e in mine if isinstance(e.get("start_us"), (int, float))]
        if not timed:
            continue
        t0 = min(e["start_us"] for e in timed)
        ops = [(e["name"], e.get("kind") or "op", parent.start_ns + int((e["start_us"] - t0) * 1000),
                int((e.get("elapsed_us") or 0) * 1000)) for e in timed]
        out += _nest(ops, parent)
    return out, None


def _op_events(run_dir: Path, timeline: Timeline) -> tuple[list[dict[str, Any]], str | None]:
    from slmdeploy.analysis.ops import ETDUMP_FILE, LITERT_PROFILE_FILE

    if (run_dir / ETDUMP_FILE).is_file():
        return _etdump_ops(run_dir / ETDUMP_FILE, timeline)
    if (run_dir / LITERT_PROFILE_FILE).is_file():
        return _litert_ops(run_dir / LITERT_PROFILE_FILE, timeline)
    return [], None


def trace_events(run_dir: str | Path, *, ops: bool = True) -> tuple[dict[str, Any], str | None]:
    """The trace-event document of one run directory, and a note when its profile could not be nested."""
    run_dir = Path(run_dir)
    if not (run_dir / TRACE_FILE).is_file():
        raise SlmdeployError(f"{run_dir} has no {TRACE_FILE}: --perfetto takes one run directory.")
    meta = json.loads((run_dir / RUN_FILE).read_text()) if (run_dir / RUN_FILE).is_file() else {}
    timeline = layout(read_trace(run_dir / TRACE_FILE))
    if not timeline.slices:
        raise SlmdeployError(f"{run_dir / TRACE_FILE} has no load or iteration events: nothing to lay out.")
    events = _metadata(meta, run_dir)
    for s in timeline.slices:
        events.append(_x(s.name, s.kind, s.start_ns, s.dur_ns, s.args))
    op_events, note = _op_events(run_dir, timeline) if ops else ([], None)
    events += op_events
    events += _counters(timeline)
    doc = {"traceEvents": events, "displayTimeUnit": "ms",
           "metadata": {"run_id": meta.get("run_id") or run_dir.name, "timestamps": (
               "reconstructed: each slice ends when its trace event was written (t_ns)"
               + ("; events without t_ns laid out sequentially" if timeline.sequential else ""))}}
    return doc, note


def write_perfetto(run_dir: str | Path, out: str | Path, *, ops: bool = True) -> PerfettoResult:
    """Write ``run_dir``'s trace as Chrome trace-event JSON to ``out`` (open it in ui.perfetto.dev)."""
    doc, note = trace_events(run_dir, ops=ops)
    out = Path(out)
    try:
        out.write_text(json.dumps(doc, separators=(",", ":")))
    except OSError as err:
        raise SlmdeployError(f"cannot write {out}: {err.strerror}; pick a writable --perfetto path.") from None
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    ops_count = sum(1 for e in slices if e["cat"] not in HARNESS_CATEGORIES)
    counters = sum(1 for e in doc["traceEvents"] if e["ph"] == "C")
    return PerfettoResult(out, len(slices) - ops_count, ops_count, counters, note)
