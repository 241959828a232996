"""Whether a file or directory can be made at a path, found out without making anything.

Checks that run before any work must not leave traces of a refused command behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from slmdeploy.errors import OutputDirError


def check_creatable(path: Path, what: str, fix: str) -> None:
    """``OutputDirError`` unless ``path`` exists (as a directory, for ``what`` ending in "directory")
    or could be created: its nearest existing ancestor is a writable directory."""
    path = Path(path).absolute()
    want_dir = what.endswith("directory")
    if path.exists():
        if want_dir != path.is_dir():
            kind = "a directory" if path.is_dir() else "not a directory"
            raise OutputDirError(f"cannot use {path} as the {what}: it is {kind}. {fix}")
        parent = path if want_dir else path.parent
    else:
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise OutputDirError(f"cannot create the {what} {path}: {parent} is not a directory. {fix}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputDirError(f"cannot write the {what} {path}: {parent} is not writable. {fix}")
