"""Traces are untrusted input: check every event before a number is made of it.

A trace comes back from a device over a link that can drop, from a harness that can be
killed mid-write or be a different build, or from a file someone edited. ``read_trace``
stays tolerant (it only skips undecodable lines); ``check_trace`` is what the analysis
reads through: it keeps the events that make sense, drops the rest, and names each problem
with its file and line (``trace.jsonl:17: iteration ns is negative (-5)``), so a report
never shows an impossible number and a run with a bad trace is flagged, not silently wrong.

What is checked (protocol ``slmdeploy.trace/1``, docs/harness-protocol.md):

- every line is a JSON object with a string ``type`` (torn and non-object lines are skipped
  and counted);
- a header comes first and names the known protocol; without one, or with another version,
  no event is interpreted (a future format read as v1 would give wrong numbers);
- nothing follows the footer; a second header is dropped;
- iterations: ``phase`` known, ``run`` a non-negative integer, ``warmup`` a boolean,
  ``tokens`` a non-negative integer, ``ns`` a finite number > 0 (0 only with 0 tokens),
  ``step_ns`` a list of such numbers; a bad one drops the whole event;
- memory fields (``*_kib``): non-negative integers up to 1 TiB; a bad one is dropped alone
  (the event's timing stays);
- load ``ns`` as an iteration's; telemetry maps of finite numbers (frequencies >= 0);
  ``t_ns`` a finite number >= 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmdeploy.harness.protocol import PROTOCOL
from slmdeploy.harness.trace import Trace

KNOWN_PROTOCOLS = (PROTOCOL,)
MAX_KIB = 1 << 30  # 1 TiB: no phone or board this tool measures has that much memory
MEMORY_FIELDS = ("rss_kib", "hwm_kib", "pss_kib", "rss_before_kib")
PHASES = ("prefill", "decode", "forward")
TELEMETRY_MAPS = {"cpu_khz": 0.0, "cpu_max_khz": 0.0, "thermal_mc": None}  # map -> lower bound (None: any)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a trace, at a line (1-based; None for the whole file)."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


@dataclass
class CheckedTrace:
    """The events that passed (as a ``Trace``), what was wrong, and how many lines went unused."""

    trace: Trace
    problems: list[Problem] = field(default_factory=list)
    skipped_lines: int = 0  # torn, not an object, a bad event, after the footer, unreadable version

    @property
    def clean(self) -> bool:
        return not self.problems

    def reason(self) -> str | None:
        """One line for a report: the first problem, and how many more there are."""
        if not self.problems:
            return None
        more = len(self.problems) - 1
        return str(self.problems[0]) + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _duration_problem(kind: str, name: str, value: Any, tokens: Any = None) -> str | None:
    if value is None:
        return f"{kind} has no {name}"
    if not _is_number(value):
        if isinstance(value, float):
            return f"{kind} {name} is not finite ({_show(value)})"
        return f"{kind} {name} is not a number ({_show(value)})"
    if value < 0:
        return f"{kind} {name} is negative ({_show(value)})"
    if value == 0 and tokens != 0:
        return f"{kind} {name} is zero"
    return None


def _iteration_problem(event: dict[str, Any]) -> str | None:
    """Why an iteration cannot be used (None: it can)."""
    phase = event.get("phase")
    if phase not in PHASES:
        return f"iteration phase is {_show(phase)}, not one of {', '.join(PHASES)}"
    run = event.get("run")
    if "run" in event and not (_is_int(run) and run >= 0):
        return f"iteration run is not a non-negative integer ({_show(run)})"
    if "warmup" in event and not isinstance(event["warmup"], bool):
        return f"iteration warmup is not true/false ({_show(event['warmup'])})"
    tokens = event.get("tokens")
    if phase != "forward" or tokens is not None:
        if tokens is None:
            return "iteration has no tokens"
        if not _is_int(tokens):
            return f"iteration tokens is not an integer ({_show(tokens)})"
        if tokens < 0:
            return f"iteration tokens is negative ({tokens})"
    problem = _duration_problem("iteration", "ns", event.get("ns"), tokens if phase != "forward" else None)
    if problem:
        return problem
    if "step_ns" in event:
        steps = event["step_ns"]
        if not isinstance(steps, list):
            return f"iteration step_ns is not a list ({_show(steps)})"
        for step in steps:
            problem = _duration_problem("iteration", "step_ns entry", step, tokens=None)
            if problem:
                return problem
    return None


def _memory_problems(event: dict[str, Any], kind: str) -> list[str]:
    """Checks (and drops) bad memory fields in place; the event's other numbers stay usable."""
    out = []
    for name in MEMORY_FIELDS:
        if name not in event:
            continue
        value = event[name]
        if value is None:
            continue
        if not _is_int(value):
            out.append(f"{kind} {name} is not an integer ({_show(value)})")
        elif value < 0:
            out.append(f"{kind} {name} is negative ({value})")
        elif value > MAX_KIB:
            out.append(f"{kind} {name} is absurd ({value} KiB > 1 TiB)")
        else:
            continue
        del event[name]
    return out


def _telemetry_problems(event: dict[str, Any]) -> list[str]:
    out = []
    for name, lower in TELEMETRY_MAPS.items():
        if name not in event:
            continue
        values = event[name]
        if not isinstance(values, dict):
            out.append(f"telemetry {name} is not a map ({_show(values)})")
            del event[name]
            continue
        for key, value in list(values.items()):
            if not _is_number(value):
                out.append(f"telemetry {name}.{key} is not a finite number ({_show(value)})")
                del values[key]
            elif lower is not None and value < lower:
                out.append(f"telemetry {name}.{key} is negative ({_show(value)})")
                del values[key]
    return out


def _check_event(event: dict[str, Any]) -> tuple[bool, list[str]]:
    """(keep the event?, problems). Fixes what can be fixed in place (a bad field dropped)."""
    kind = event["type"]
    problems: list[str] = []
    if "t_ns" in event and not (_is_number(event["t_ns"]) and event["t_ns"] >= 0):
        problems.append(f"{kind} t_ns is not a non-negative number ({_show(event['t_ns'])})")
        del event["t_ns"]
    if kind == "iteration":
        problem = _iteration_problem(event)
        if problem:
            return False, problems + [problem]
    elif kind == "load":
        problem = _duration_problem("load", "ns", event.get("ns"))
        if problem:
            return False, problems + [problem]
        threads = event.get("threads")
        if threads is not None and not (_is_int(threads) and threads >= 0):
            problems.append(f"load threads is not a non-negative integer ({_show(threads)})")
            del event["threads"]
    elif kind == "telemetry":
        problems += _telemetry_problems(event)
    elif kind == "footer":
        if not isinstance(event.get("status"), str):
            return False, problems + [f"footer status is not a string ({_show(event.get('status'))})"]
    elif kind == "error":
        if not isinstance(event.get("message"), str):
            problems.append(f"error message is not a string ({_show(event.get('message'))})")
            event["message"] = str(event.get("message"))
    elif kind == "header":
        for name in ("harness", "runtime", "workload", "model", "host"):
            if name in event and not isinstance(event[name], dict):
                problems.append(f"header {name} is not an object ({_show(event[name])})")
                del event[name]
        for name, key in (("harness", "name"), ("runtime", "version"), ("runtime", "name")):
            part = event.get(name, {})
            if key in part and not isinstance(part[key], str):
                problems.append(f"header {name}.{key} is not a string ({_show(part[key])})")
                del part[key]
    problems += _memory_problems(event, kind)
    return True, problems


def check_trace(path: str | Path, name: str | None = None) -> CheckedTrace:
    """Read and check a trace; ``name`` is how problems name the file (default: its file name).

    Never raises on content (only on an unreadable file): what cannot be trusted is left
    out and listed in ``problems``.
    """
    path = Path(path)
    name = name or path.name
    events: list[dict[str, Any]] = []
    problems: list[Problem] = []
    skipped = 0
    header_seen = footer_line = None
    readable = True  # False once the header says (or fails to say) the format is one we know

    def problem(line: int | None, message: str) -> None:
        problems.append(Problem(name, line, message))

    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                skipped += 1
                problem(number, "not a JSON line (torn or corrupt), skipped")
                continue
            if not isinstance(event, dict):
                skipped += 1
                problem(number, f"not a JSON object ({type(event).__name__}), skipped")
                continue
            kind = event.get("type")
            if not isinstance(kind, str):
                skipped += 1
                problem(number, f"event type is missing or not a string ({_show(kind)}), skipped")
                continue
            if footer_line is not None:
                skipped += 1
                problem(number, f"{kind} event after the footer (line {footer_line}), skipped")
                continue
            if header_seen is None:
                if kind != "header":
                    skipped += 1
                    problem(number, f"no header before this {kind} event: the trace's protocol is unknown, "
                                    "so none of it is read")
                    readable = False
                    header_seen = number
                    continue
                header_seen = number
                protocol = event.get("protocol")
                if protocol not in KNOWN_PROTOCOLS:
                    problem(number, f"unknown protocol {_show(protocol)} (this slmdeploy reads "
                                    f"{', '.join(KNOWN_PROTOCOLS)}); none of the trace is read: upgrade slmdeploy")
                    readable = False
            elif kind == "header":
                skipped += 1
                problem(number, f"a second header (the first is on line {header_seen}), skipped")
                continue
            if not readable:
                skipped += 1
                continue
            keep, messages = _check_event(event)
            for message in messages:
                problem(number, message + ("" if keep else ", skipped"))
            if not keep:
                skipped += 1
                continue
            if kind == "footer":
                footer_line = number
            events.append(event)
    if header_seen is None:
        problem(None, "empty trace: no header")
    return CheckedTrace(Trace(events=events, torn_lines=skipped, path=path), problems, skipped)
