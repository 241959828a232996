"""Reads the zoo's data files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from slmdeploy.errors import UnknownModelError

MODELS_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class SurveyRow:
    """Links an entry to a row of the SLM survey's architecture table (docs/zoo.md)."""

    model: str  # the survey's Model column (mostly a Hugging Face repo id)
    parameters: str  # the survey's Parameters column as printed ("125M", "1.1B")


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: a name, a published HF config and where that config came from."""

    name: str
    description: str
    reference: str
    hf_config: dict[str, Any]
    path: Path
    survey: SurveyRow | None = None  # the row of the SLM survey this entry reproduces, if any

    @property
    def architecture(self) -> str:
        return self.hf_config["architectures"][0]


@lru_cache(maxsize=None)
def _load_all() -> dict[str, ZooEntry]:
    entries = {}
    for path in sorted(MODELS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        entries[data["name"]] = ZooEntry(
            name=data["name"],
            description=data["description"],
            reference=data["reference"],
            hf_config=data["hf_config"],
            path=path,
            survey=SurveyRow(**data["survey"]) if "survey" in data else None,
        )
    return entries


def names() -> list[str]:
    return list(_load_all())


def get(name: str) -> ZooEntry:
    entries = _load_all()
    if name not in entries:
        raise UnknownModelError(
            f"unknown model {name!r}: not a zoo name and not a checkpoint directory. "
            f"Zoo models: {', '.join(entries)}; or pass a local Hugging Face checkpoint directory."
        )
    return entries[name]
