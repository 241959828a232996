"""An exported artifact on disk: a directory with model file(s) and ``manifest.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from slmdeploy.errors import ArtifactError
from slmdeploy.export.manifest import MANIFEST_NAME, Manifest
from slmdeploy.export.source import sha256_file


@dataclass
class Artifact:
    path: Path
    manifest: Manifest
    cache_hit: bool = False

    @property
    def model_file(self) -> Path:
        return self.path / self.manifest.model_file.path

    @property
    def name(self) -> str:
        return self.manifest.name

    @classmethod
    def open(cls, path: str | Path) -> "Artifact":
        """Read an artifact directory (or its manifest.json); raises ``ArtifactError`` if unusable."""
        path = Path(path)
        if path.name == MANIFEST_NAME:
            path = path.parent
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ArtifactError(
                f"{path} is not an artifact: no {MANIFEST_NAME} there. Export one with `slmdeploy export MODEL`."
            )
        try:
            manifest = Manifest.from_dict(json.loads(manifest_path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError, ValueError) as err:
            raise ArtifactError(f"{manifest_path} is unreadable ({err}); export the model again.") from None
        return cls(path=path, manifest=manifest)

    def verify(self) -> None:
        """Check every file against the manifest's size and sha256."""
        for entry in self.manifest.files:
            file = self.path / entry.path
            if not file.is_file():
                raise ArtifactError(f"artifact {self.path} is missing {entry.path}; export it again.")
            if file.stat().st_size != entry.size or sha256_file(file) != entry.sha256:
                raise ArtifactError(
                    f"artifact file {file} does not match its manifest (sha256 mismatch): it is corrupt or was "
                    "changed after export. Export it again (`slmdeploy export ... --force`)."
                )
