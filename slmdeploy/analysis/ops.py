"""A run's op-level profile, whichever runtime wrote it, as one breakdown table.

``bench --profile`` leaves ``etdump.etdp`` (ExecuTorch) or ``litert_profile.json`` (LiteRT,
native harness) in the run directory; both become a DataFrame with the columns of
``etdump.COLUMNS``, so one table and one summary serve both runtimes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from slmdeploy.analysis.records import RUN_FILE, TRACE_FILE
from slmdeploy.errors import SlmdeployError

if TYPE_CHECKING:
    import pandas as pd

ETDUMP_FILE = "etdump.etdp"
LITERT_PROFILE_FILE = "litert_profile.json"


def profile_file_for(runtime: str) -> str:
    """The op-level profile a harness writes for ``runtime`` (``bench --profile``)."""
    files = {"executorch": ETDUMP_FILE, "tflite": LITERT_PROFILE_FILE}
    if runtime not in files:
        raise SlmdeployError(f"no harness profiles {runtime} artifacts op by op; --profile takes executorch or tflite.")
    return files[runtime]


def has_profile(run_dir: Path) -> bool:
    return (run_dir / ETDUMP_FILE).is_file() or (run_dir / LITERT_PROFILE_FILE).is_file()


def run_ops(run_dir: str | Path, phase: str | None = None) -> "pd.DataFrame":
    """The op/delegate breakdown of one run directory, for one phase (``prefill``, ``decode``) or all."""
    run_dir = Path(run_dir)
    trace = run_dir / TRACE_FILE
    if (run_dir / ETDUMP_FILE).is_file():
        from slmdeploy.analysis.etdump import op_breakdown

        meta = json.loads((run_dir / RUN_FILE).read_text())
        artifact = meta.get("artifact_path")
        artifact = artifact if artifact and (Path(artifact) / "manifest.json").is_file() else None
        return op_breakdown(run_dir / ETDUMP_FILE, artifact=artifact, trace=trace if phase else None, phase=phase)
    if (run_dir / LITERT_PROFILE_FILE).is_file():
        from slmdeploy.analysis.litert_profile import op_breakdown as litert_breakdown

        return litert_breakdown(run_dir / LITERT_PROFILE_FILE, phase=phase)
    raise SlmdeployError(f"{run_dir} has no op-level profile; run bench with --profile to record one.")
