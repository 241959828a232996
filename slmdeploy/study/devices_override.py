"""`study run/plan --device SPEC`: the same study file on other devices, without editing it.

The study file's ``[devices]`` table (and its ``[[devices.device]]`` entries) is replaced by
``[devices] specs = [...]`` in the text the study directory keeps, so ``--resume`` runs on the
same devices. Everything else in the file is kept byte for byte.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_HEADER = re.compile(r"^\s*\[")
_DEVICES = re.compile(r"^\s*\[\[?\s*devices\s*(\]|\.)")


def with_devices(text: str, specs: list[str]) -> str:
    """``text`` with its devices replaced by ``specs`` (a study file's TOML)."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        if _HEADER.match(line):
            inside = bool(_DEVICES.match(line))
        if not inside:
            kept.append(line)
    body = "".join(kept)
    if body and not body.endswith("\n"):
        body += "\n"
    # a JSON string of a device spec is a valid TOML basic string
    return body + "\n[devices]  # from --device\nspecs = [" + ", ".join(json.dumps(s) for s in specs) + "]\n"


def load_study_on(path: Path, specs: list[str]):
    """``load_study(path)`` with ``--device`` specs in place of the file's devices (none given: the file's)."""
    import tomllib

    from slmdeploy.study.spec import StudyError, load_study, parse_study

    study = load_study(path)  # the file as written must be valid too
    if not specs:
        return study
    try:
        data = tomllib.loads(with_devices(path.read_text(), specs))
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{path}: cannot replace its devices with --device ({err}); edit its [devices] instead.") from None
    return parse_study(data, str(path), path.resolve().parent)
