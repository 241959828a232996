"""The run directory on this host: everything one benchmark run produced, and its status.

``run.json`` is rewritten at every status change (running -> complete | incomplete |
failed), atomically, so an interrupted run is still a readable record.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from slmdeploy.analysis.records import RUN_FILE
from slmdeploy.errors import OutputDirError


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunDir:
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, artifact_name: str, device_spec: str) -> "RunDir":
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{_slug(artifact_name)}-{_slug(device_spec)}-{secrets.token_hex(2)}"
        path = Path(runs_dir) / name
        try:
            path.mkdir(parents=True)
            probe = path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise OutputDirError(
                f"cannot write runs to {runs_dir}: {err.strerror}. Pick another --runs-dir or fix its permissions."
            ) from None
        return cls(path=path)

    def update(self, **fields: Any) -> None:
        self.meta.update(fields)
        tmp = self.path / (RUN_FILE + ".tmp")
        tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        os.replace(tmp, self.path / RUN_FILE)

    def write_json(self, name: str, data: Any) -> None:
        (self.path / name).write_text(json.dumps(data, indent=2, default=str) + "\n")
