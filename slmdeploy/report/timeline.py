"""A run's trace laid out on one time axis: load, runs, prefills, decode steps, telemetry, memory.

Both harnesses stamp every event with ``t_ns`` (nanoseconds since the harness started) when
they *write* it, i.e. just after the timed work; an iteration carries its duration (``ns``)
and, for decode/forward, each step's duration (``step_ns``) but no start time. So a slice
ends at its event's ``t_ns`` and starts ``ns`` (or ``sum(step_ns)``) earlier, and the steps
follow one another back to back from there (the few µs between two steps are not recorded
and fall at the end of the iteration). An event without ``t_ns`` (an old or hand-written
trace) is laid out sequentially after the previous slice. Slices are clamped so that they
never overlap the previous one: the times are reconstructions, good to a few µs.

Times here are nanoseconds from the earliest time in the trace (0 = the first event).
The HTML report's timelines and the Perfetto export share this layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slmdeploy.harness.trace import Trace


@dataclass(frozen=True)
class Slice:
    """A timed span: ``kind`` is load, run, prefill, decode, forward or step."""

    kind: str
    name: str
    start_ns: int
    dur_ns: int
    run: int | None = None
    warmup: bool = False
    phase: str | None = None
    index: int | None = None  # the step's index within its iteration
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.dur_ns


@dataclass
class Timeline:
    """Everything a run's trace says about time, on one axis (ns from the first event)."""

    slices: list[Slice]
    telemetry: list[dict[str, Any]]  # {"t_ns", "cpu_khz", "cpu_max_khz", "thermal_mc"}, sorted by t_ns
    memory: list[dict[str, Any]]  # {"t_ns", "rss_kib", "hwm_kib"}, sorted by t_ns
    origin_ns: int  # the trace's t_ns that became 0
    sequential: bool  # True when some slice had no t_ns and was placed after the previous one

    def of(self, kind: str) -> list[Slice]:
        return [s for s in self.slices if s.kind == kind]

    def steps(self, phase: str = "decode", include_warmup: bool = True) -> list[Slice]:
        return [s for s in self.slices if s.kind == "step" and s.phase == phase and (include_warmup or not s.warmup)]


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value else None


def _label(run: int | None, warm: bool) -> str:
    return f"{'warmup' if warm else 'run'} {run if run is not None else '?'}"


def layout(trace: Trace) -> Timeline:
    """Lay out ``trace`` (see the module docstring for how start times are reconstructed)."""
    raw: list[Slice] = []
    cursor = 0
    sequential = False
    for event in trace.events:
        kind = event.get("type")
        if kind not in ("load", "iteration"):
            continue
        steps = [int(v) for v in event.get("step_ns") or [] if _int(v) is not None]
        dur = sum(steps) if steps and kind == "iteration" else (_int(event.get("ns")) or 0)
        end = _int(event.get("t_ns"))
        if end is None:
            sequential = True
            start = cursor
        else:
            start = max(end - dur, cursor)
        cursor = start + dur
        if kind == "load":
            raw.append(Slice("load", "load", start, dur, args={"threads": event.get("threads")}))
            continue
        phase = str(event.get("phase") or "forward")
        run, warm = _int(event.get("run")), bool(event.get("warmup"))
        label = _label(run, warm)
        args = {"tokens": event.get("tokens"), "run": run, "warmup": warm}
        raw.append(Slice(phase, f"{phase} ({label})", start, dur, run, warm, phase, args=args))
        at, pos = start, _int(event.get("start_pos"))
        for i, step in enumerate(steps if phase != "prefill" else []):
            name = f"{'step' if phase == 'decode' else 'invoke'} {i}" + (" (warmup)" if warm else "")
            raw.append(Slice("step", name, at, step, run, warm, phase, i, {"pos": pos + i if pos is not None else None, "warmup": warm}))
            at += step

    slices = _with_runs(raw)
    telemetry = sorted(
        ({"t_ns": int(e["t_ns"]), "cpu_khz": e.get("cpu_khz") or {}, "cpu_max_khz": e.get("cpu_max_khz") or {},
          "thermal_mc": e.get("thermal_mc") or {}} for e in trace.of("telemetry") if _int(e.get("t_ns")) is not None),
        key=lambda e: e["t_ns"])
    memory = []
    for s, event in zip((s for s in raw if s.kind in ("load", "prefill", "decode", "forward")),
                        (e for e in trace.events if e.get("type") in ("load", "iteration"))):
        if _int(event.get("rss_kib")) is not None:
            memory.append({"t_ns": s.end_ns, "rss_kib": int(event["rss_kib"]), "hwm_kib": _int(event.get("hwm_kib"))})
    memory.sort(key=lambda m: m["t_ns"])

    stamps = (_int(e.get("t_ns")) for e in trace.events)
    starts = [s.start_ns for s in slices] + [t for t in stamps if t is not None]
    origin = min(starts) if starts else 0
    slices = [_shift(s, origin) for s in slices]
    for series in (telemetry, memory):
        for point in series:
            point["t_ns"] -= origin
    return Timeline(slices, telemetry, memory, origin, sequential)


def _shift(s: Slice, by: int) -> Slice:
    return Slice(s.kind, s.name, s.start_ns - by, s.dur_ns, s.run, s.warmup, s.phase, s.index, s.args)


def _with_runs(raw: list[Slice]) -> list[Slice]:
    """Insert a parent ``run`` slice over each run's (or warm-up's) iterations, before them."""
    out: list[Slice] = []
    group: list[Slice] = []

    def flush() -> None:
        if group:
            first, last = group[0], max(group, key=lambda s: s.end_ns)
            out.append(Slice("run", _label(first.run, first.warmup), first.start_ns, last.end_ns - first.start_ns,
                             first.run, first.warmup, args={"run": first.run, "warmup": first.warmup}))
            out.extend(group)
            group.clear()

    for s in raw:
        if s.kind in ("load",):
            flush()
            out.append(s)
        elif s.kind == "step":
            group.append(s)
        elif group and (s.run, s.warmup) == (group[0].run, group[0].warmup) and s.phase != "prefill":
            group.append(s)
        else:
            flush()
            group.append(s)
    flush()
    return out
