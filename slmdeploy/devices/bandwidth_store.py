"""The last memory bandwidth measured on each device, kept on this host.

A run whose harness probed the bandwidth (a ``bandwidth`` trace event) leaves it here, one
small JSON file per physical device (``spec.identity``, the key the device lock uses), so the
analysis of a run without a probe, and ``slmdeploy devices``, can still use it:

    $SLMDEPLOY_CACHE/devices/<identity>.json   (default ~/.cache/slmdeploy/devices/)
    {"identity": "adb-device:R58M123ABC", "spec": "adb:R58M123ABC",
     "bandwidth": {"best_gbps": 21.4, "bytes": 134217728, "passes": 5, "threads": 8,
                   "harness": "native", "run_id": "...", "measured_at": "2026-12-02T11:00:00+00:00"}}
"""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slmdeploy.devices.spec import identity


def store_dir() -> Path:
    root = os.environ.get("SLMDEPLOY_CACHE") or Path.home() / ".cache" / "slmdeploy"
    return Path(root) / "devices"


def device_file(spec: str) -> Path:
    """The file of the device ``spec`` names (one per physical device, whatever transport reaches it)."""
    return store_dir() / (re.sub(r"[^A-Za-z0-9_.@-]", "_", identity(spec)) + ".json")


def remember(spec: str, event: dict[str, Any], harness: str | None = None, run_id: str | None = None) -> Path:
    """Keep ``event`` (a ``bandwidth`` trace event with ``best_gbps``) as the device's last measurement."""
    path = device_file(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "identity": identity(spec),
        "spec": spec,
        "bandwidth": {
            **{k: event.get(k) for k in ("best_gbps", "median_gbps", "bytes", "passes", "threads")},
            "harness": harness,
            "run_id": run_id,
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def last(spec: str | None) -> dict[str, Any] | None:
    """The device's last measurement (the ``bandwidth`` object above), None if never measured or unreadable."""
    if not isinstance(spec, str) or not spec.strip():  # run.json is untrusted: a spec of another type is none
        return None
    try:
        data = json.loads(device_file(spec).read_text())
    except (OSError, ValueError):
        return None
    found = data.get("bandwidth") if isinstance(data, dict) else None
    gbps = found.get("best_gbps") if isinstance(found, dict) else None
    if not isinstance(gbps, (int, float)) or isinstance(gbps, bool) or not math.isfinite(gbps) or gbps <= 0:
        return None
    return found
