"""Errors a user can act on.

Every failure that bad input or a bad environment can cause is raised as a
``SlmdeployError`` with a message that says what was wrong and what to do. The CLI
prints these as one line and exits non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class SlmdeployError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole explanation."""

    exit_code = 2


class UnknownModelError(SlmdeployError):
    """A model name that is neither a zoo entry nor a checkpoint directory."""


class UnknownTargetError(SlmdeployError):
    """A target name that is neither shipped nor a target file."""


class ArtifactError(SlmdeployError):
    """A missing, incomplete or corrupt artifact (manifest or file hash mismatch)."""


class WorkloadError(SlmdeployError):
    """A workload the artifact cannot run (e.g. longer than its max sequence length)."""


class OutputDirError(SlmdeployError):
    """An output directory that cannot be created or written."""


class ExportError(SlmdeployError):
    """An export that failed in a known way (toolchain missing, unsupported combination)."""


class DeviceError(SlmdeployError):
    """A device that cannot be reached, is busy, or answered unexpectedly."""


class HarnessError(SlmdeployError):
    """The on-device harness failed; the run directory keeps what it measured."""

    exit_code = 3


class ToolchainError(SlmdeployError):
    """A toolchain slmdeploy fetches and builds itself (llama.cpp) is missing, damaged or did not build."""
