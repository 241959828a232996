"""``study status``: where a study directory stands, from its journal alone (no device is asked)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from slmdeploy.study.directory import StudyDir, is_study_dir
from slmdeploy.study.journal import JobState, load_state
from slmdeploy.study.plan import build_plan
from slmdeploy.study.spec import DeviceEntry, StudyError


def study_status(study_dir: str | Path) -> dict[str, Any]:
    """Counts per status and per device, and every job that is not complete with its reason."""
    path = Path(study_dir)
    if not is_study_dir(path):
        raise StudyError(f"{path} is not a study directory (no journal.jsonl and study.toml); "
                         "give the --dir a `slmdeploy study run` wrote.")
    sd = StudyDir(path)
    study = sd.study()
    state = load_state(path)
    if not state.studies:
        return {"study": study.name, "dir": str(path), "started": False, "jobs": 0, "by_status": {}, "devices": [],
                "problems": []}
    last = state.studies[-1]
    plan = build_plan(study, [DeviceEntry(spec) for spec in last["devices"]])
    rows = [_row(job, state.jobs.get(job.id, JobState())) for job in plan.jobs]
    devices = []
    for d in plan.devices:
        mine = Counter(r["status"] for r in rows if r["device"] == d.spec)
        event = state.devices.get(d.spec, {})
        devices.append({"spec": d.spec, "state": event.get("state", "ok"), "reason": event.get("reason"),
                        "jobs": sum(mine.values()), **dict(mine)})
    return {
        "study": study.name,
        "dir": str(path),
        "started": True,
        "invocations": len(state.studies),
        "jobs": len(rows),
        "by_status": dict(Counter(r["status"] for r in rows)),
        "devices": devices,
        "exports_failed": {k: e["error"] for k, e in state.exports.items() if e.get("error")},
        "problems": [r for r in rows if r["status"] != "complete"],
        "torn_journal_lines": state.torn,
    }


def _row(job, js: JobState) -> dict[str, Any]:
    if js.open_attempt is not None:
        status = "running"  # or its runner was killed; `study run --resume` settles it
    elif js.status is not None:
        status = js.status
    else:
        status = "not run" if js.not_run else "pending"
    return {**job.to_dict(), "name": job.name, "status": status, "attempts": js.started, "run_dir": js.run_dir,
            "reason": js.error if status not in ("not run", "pending") else js.not_run}
