"""Op-level profiles: an ETDump (from ``--etdump`` of either harness) as a DataFrame.

Both harnesses write ExecuTorch's ETDump; ``executorch.devtools.Inspector`` reads it. This
module turns the Inspector's per-instruction events into one row per operator:

- ``operator`` rows: ExecuTorch kernels that ran outside any delegate (``native_call_*``);
- ``delegate_call`` rows: the time spent inside each backend's delegated subgraphs;
- ``delegated_op`` rows: the ops a delegate profiled inside those calls (XNNPACK reports
  e.g. ``Fully Connected (NC, F32) GEMM``), which break the ``delegate_call`` time down.

``operator`` and ``delegate_call`` rows partition the execute time (``share`` is of the
total ``Method::execute`` time; what is left is the runtime's own overhead, see
``summary``). With the harness's trace, the executes are labelled prefill/decode/forward
and ``phase=`` keeps one phase only.

    from slmdeploy.analysis.etdump import op_breakdown, summary
    df = op_breakdown("runs/x/etdump.etdp", artifact="artifacts/llama-tiny-host-xnnpack",
                      trace="runs/x/trace.jsonl", phase="decode")
    print(df.head(10)); print(summary(df))

An ETRecord (``etrecord=``, or ``etrecord.bin`` in the artifact directory) adds the ATen
ops behind each event and the delegate backend names; without one, the backend name comes
from the artifact's manifest, or from the program itself, when all its delegates use one
backend.
"""

from __future__ import annotations

import functools
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slmdeploy.errors import SlmdeployError
from slmdeploy.harness.trace import Trace, read_trace

if TYPE_CHECKING:
    import pandas as pd

ETRECORD_NAME = "etrecord.bin"
COLUMNS = ["op", "category", "backend", "aten_ops", "instances", "calls", "total_ms", "mean_ms", "p50_ms", "share"]


class EtdumpError(SlmdeployError):
    """An ETDump that is missing, unreadable or does not match the trace given with it."""


# Manifest delegate names -> the backend ids ExecuTorch records in a program.
BACKEND_IDS = {"xnnpack": "XnnpackBackend", "coreml": "CoreMLBackend", "qnn": "QnnBackend",
               "vulkan": "VulkanBackend", "mps": "MPSBackend", "openvino": "OpenvinoBackend"}


def _artifact_files(artifact: Any) -> tuple[Path | None, Path | None, str | None]:
    """(program file, ETRecord, the backend id when the manifest names exactly one delegate)."""
    if artifact is None:
        return None, None, None
    from slmdeploy.export.artifact import Artifact

    art = artifact if isinstance(artifact, Artifact) else Artifact.open(artifact)
    etrecord = art.path / ETRECORD_NAME
    delegates = list(art.manifest.delegates or [])
    backend = BACKEND_IDS.get(delegates[0]) if len(delegates) == 1 else None
    return art.model_file, (etrecord if etrecord.is_file() else None), backend


def program_backends(program: str | Path) -> list[str]:
    """Backend ids of the delegates in a ``.pte`` program, in order (e.g. ``XnnpackBackend``)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    path = Path(program)
    if not path.is_file():
        raise EtdumpError(f"no program at {path}.")
    pte = deserialize_pte_binary(path.read_bytes())
    pte = getattr(pte, "program", pte)
    return [d.id for plan in pte.execution_plan for d in plan.delegates]


def _stamp(path: Path | None) -> tuple[str, int, int] | None:
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _inspector(etdump: tuple, etrecord: tuple | None, debug: tuple | None):
    from executorch.devtools import Inspector

    try:
        return Inspector(etdump_path=etdump[0], etrecord=etrecord[0] if etrecord else None,
                         debug_buffer_path=debug[0] if debug else None)
    except Exception as err:  # the Inspector raises plain exceptions on corrupt input
        raise EtdumpError(f"cannot read the ETDump {etdump[0]}: {type(err).__name__}: {err}") from None


def load_inspector(etdump: str | Path, etrecord: str | Path | None = None, debug_buffer: str | Path | None = None):
    """``executorch.devtools.Inspector`` over an ETDump (times in ms).

    Parsing is the slow part of an analysis, so the last few are kept, keyed by the files'
    size and modification time (analysing prefill, then decode, parses once).
    """
    path = Path(etdump)
    if not path.is_file():
        raise EtdumpError(f"no ETDump at {path}: run the harness with --etdump PATH (slmdeploy bench --etdump).")
    if etrecord and not Path(etrecord).is_file():
        raise EtdumpError(f"no ETRecord at {etrecord}.")
    debug = Path(debug_buffer) if debug_buffer else path.with_name(path.name + ".debug")
    return _inspector(_stamp(path), _stamp(Path(etrecord)) if etrecord else None, _stamp(debug))


def execute_phases(trace: str | Path | Trace) -> list[str]:
    """The phase of each ``Method::execute`` of a harness run, in order (warm-up included).

    A prefill iteration is one execute, a decode iteration one per step, a generic
    iteration one per invocation -- the order both harnesses execute in.
    """
    t = trace if isinstance(trace, Trace) else read_trace(trace)
    phases: list[str] = []
    for event in t.iterations(include_warmup=True):
        phase = event.get("phase", "")
        count = 1 if phase == "prefill" else len(event.get("step_ns", []))
        phases += [phase] * count
    return phases


def _op_name(event_name: str, delegated: bool) -> tuple[str, str]:
    if event_name.startswith("native_call_"):
        return event_name[len("native_call_"):], "operator"
    if event_name == "DELEGATE_CALL":
        return "DELEGATE_CALL", "delegate_call"
    if event_name == "OPERATOR_CALL":
        return "OPERATOR_CALL", "operator_call"
    if event_name == "Method::execute":
        return event_name, "method"
    if delegated:
        return re.sub(r"\s*#\d+$", "", event_name), "delegated_op"
    return event_name, "other"


def op_breakdown(
    etdump: str | Path,
    *,
    etrecord: str | Path | None = None,
    artifact: Any = None,
    program: str | Path | None = None,
    trace: str | Path | Trace | None = None,
    phase: str | None = None,
    include_warmup: bool = True,
) -> "pd.DataFrame":
    """One row per operator / delegate of an ETDump, sorted by total time (columns: ``COLUMNS``).

    ``artifact`` (directory or ``Artifact``) supplies the program and, if present, its
    ETRecord; ``program`` names the ``.pte`` directly. ``trace`` (the run's trace) labels
    each execute with its phase; then ``phase`` ("prefill", "decode", "forward") keeps one
    phase and ``include_warmup=False`` drops the warm-up runs. ``df.attrs`` holds the
    totals ``summary`` reports.
    """
    import pandas as pd

    art_program, art_etrecord, art_backend = _artifact_files(artifact)
    etrecord = etrecord or art_etrecord
    inspector = load_inspector(etdump, etrecord)
    raw = inspector.to_dataframe()
    rows = raw[raw["event_block_name"] != "Default"]
    executes = rows[rows["event_name"] == "Method::execute"]
    n_exec = int(sum(len(r) for r in executes["raw"]))

    keep: list[bool] | None = None
    if phase is not None or not include_warmup:
        if trace is None:
            raise EtdumpError("phase= and include_warmup=False need the run's trace= to tell the executes apart.")
        t = trace if isinstance(trace, Trace) else read_trace(trace)
        phases = execute_phases(t)
        warm = [w for e in t.iterations(include_warmup=True)
                for w in [bool(e.get("warmup"))] * (1 if e.get("phase") == "prefill" else len(e.get("step_ns", [])))]
        if len(phases) != n_exec:
            raise EtdumpError(f"the trace has {len(phases)} executes but the ETDump {n_exec}: not the same run.")
        keep = [(phase is None or p == phase) and (include_warmup or not w) for p, w in zip(phases, warm)]
        if not any(keep):
            raise EtdumpError(f"the run has no {phase!r} executes (phases: {sorted(set(phases))}).")

    single_backend = art_backend if program is None else None
    if single_backend is None and (program or art_program) is not None:
        backends = set(program_backends(program or art_program))
        single_backend = backends.pop() if len(backends) == 1 else None

    def selected(values: list[float], name: str) -> list[float]:
        if keep is None:
            return list(values)
        if len(values) != n_exec:
            raise EtdumpError(f"event {name!r} ran {len(values)} times in {n_exec} executes: cannot split by phase.")
        return [v for v, k in zip(values, keep) if k]

    records: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    totals = {"execute_ms": 0.0, "operator_call_ms": 0.0}
    for row in rows.itertuples(index=False):
        name = row.event_name
        delegated = bool(row.is_delegated_op)
        op, category = _op_name(name, delegated)
        times = selected(row.raw, name)
        if category == "method":
            totals["execute_ms"] += sum(times)
            continue
        if category == "operator_call":
            totals["operator_call_ms"] += sum(times)
            continue
        backend = row.delegate_backend_name if isinstance(row.delegate_backend_name, str) else None
        if category in ("delegate_call", "delegated_op"):
            backend = backend or single_backend
            if category == "delegate_call":
                op = f"{backend or 'delegate'} call"
        aten = ",".join(str(o) for o in (row.op_types or [])) if category != "delegate_call" else ""
        rec = records.setdefault((op, category, backend), {"op": op, "category": category, "backend": backend,
                                                           "aten_ops": set(), "instances": 0, "times": []})
        rec["instances"] += 1
        rec["times"] += times
        if aten:
            rec["aten_ops"].add(aten)

    execute_ms = totals["execute_ms"]
    out = []
    for rec in records.values():
        times = rec.pop("times")
        total = float(sum(times))
        rec.update(
            aten_ops=",".join(sorted(rec["aten_ops"])),
            calls=len(times),
            total_ms=total,
            mean_ms=total / len(times) if times else 0.0,
            p50_ms=float(statistics.median(times)) if times else 0.0,
            share=total / execute_ms if execute_ms else 0.0,
        )
        out.append(rec)
    df = pd.DataFrame(out, columns=COLUMNS)
    df = df.sort_values("total_ms", ascending=False, kind="stable").reset_index(drop=True)
    df.attrs.update(
        execute_ms=execute_ms,
        executes=sum(keep) if keep is not None else n_exec,
        operator_call_ms=totals["operator_call_ms"],
        phase=phase,
        etrecord=str(etrecord) if etrecord else None,
    )
    return df


def summary(breakdown: "pd.DataFrame") -> dict[str, Any]:
    """Where the execute time went: kernels outside delegates, delegates, runtime overhead."""
    by = breakdown.groupby("category")["total_ms"].sum()
    execute = float(breakdown.attrs.get("execute_ms", 0.0))
    operator = float(by.get("operator", 0.0))
    delegate = float(by.get("delegate_call", 0.0))
    executes = int(breakdown.attrs.get("executes", 0))
    ops = breakdown[breakdown["category"] == "operator"]
    return {
        "phase": breakdown.attrs.get("phase"),
        "executes": executes,
        "execute_ms": execute,
        "execute_mean_ms": execute / executes if executes else None,
        "operator_ms": operator,
        "delegate_ms": delegate,
        "delegated_op_ms": float(by.get("delegated_op", 0.0)),
        "overhead_ms": execute - operator - delegate,
        "delegate_share": delegate / execute if execute else None,
        "operator_share": operator / execute if execute else None,
        "top_operators": ops.head(5)["op"].tolist(),
    }
