"""Export: a model source and a target in, a verified artifact directory out."""

from slmdeploy._callable import make_callable
from slmdeploy.export.api import DEFAULT_TARGET, export
from slmdeploy.export.artifact import Artifact
from slmdeploy.export.manifest import Manifest
from slmdeploy.export.source import ModelSource, from_module
from slmdeploy.export.target import Target, list_targets, load_target

__all__ = [
    "DEFAULT_TARGET",
    "Artifact",
    "Manifest",
    "ModelSource",
    "Target",
    "export",
    "from_module",
    "list_targets",
    "load_target",
]

make_callable(__name__, export)
