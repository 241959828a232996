"""An exported artifact on disk: a directory with model file(s) and ``manifest.json``.

The manifest is untrusted (``Manifest.from_json`` checks it); on top of that every file is
resolved here, symlinks included, and must stay inside the artifact directory, so nothing
outside it is ever hashed, pushed to a device or run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slmdeploy.errors import ArtifactError
from slmdeploy.export.manifest import MANIFEST_NAME, FileEntry, Manifest, ManifestError
from slmdeploy.export.source import sha256_file


@dataclass
class Artifact:
    path: Path
    manifest: Manifest
    cache_hit: bool = False

    @property
    def model_file(self) -> Path:
        return self.file(self.manifest.model_file)

    def file(self, entry: FileEntry) -> Path:
        """Where ``entry`` is on disk; ``ArtifactError`` if it resolves outside the artifact (a symlink out)."""
        root = self.path.resolve()
        real = (root / entry.path).resolve()
        if not real.is_relative_to(root) or real == root:
            raise ArtifactError(f"artifact {self.path}: {entry.path} resolves to {real}, outside the artifact "
                                "directory; refusing to use it. Export the model again.")
        return self.path / entry.path

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
            manifest = Manifest.from_json(manifest_path.read_bytes())
        except OSError as err:
            raise ArtifactError(f"cannot read {manifest_path}: {err.strerror}.") from None
        except ManifestError as err:
            raise ArtifactError(f"{manifest_path} is not a usable manifest: {err}. Export the model again.") from None
        artifact = cls(path=path, manifest=manifest)
        for entry in manifest.files:
            artifact.file(entry)
        return artifact

    def verify(self) -> None:
        """Check every file against the manifest's size and sha256."""
        for entry in self.manifest.files:
            file = self.file(entry)
            if not file.is_file():
                raise ArtifactError(f"artifact {self.path} is missing {entry.path}; export it again.")
            if file.stat().st_size != entry.size or sha256_file(file) != entry.sha256:
                raise ArtifactError(
                    f"artifact file {file} does not match its manifest (sha256 mismatch): it is corrupt or was "
                    "changed after export. Export it again (`slmdeploy export ... --force`)."
                )
