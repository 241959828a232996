"""slmdeploy: small language models from PyTorch to a phone and back with numbers.

The public surface is small: ``slmdeploy.export(...)`` makes an artifact,
``slmdeploy.bench(...)`` measures it on a device, ``slmdeploy.analysis`` reads runs
back as DataFrames. Heavy libraries (torch, executorch) load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slmdeploy._version import __version__

if TYPE_CHECKING:
    from slmdeploy.bench import bench
    from slmdeploy.export import export

__all__ = ["__version__", "bench", "export"]


def __getattr__(name: str) -> Any:
    if name == "export":
        from slmdeploy.export import export

        return export
    if name == "bench":
        from slmdeploy.bench import bench

        return bench
    if name == "analysis":
        import slmdeploy.analysis as analysis

        return analysis
    raise AttributeError(f"module 'slmdeploy' has no attribute {name!r}")
