"""slmdeploy: small language models from PyTorch to a phone and back with numbers.

The public surface is small: ``slmdeploy.export(...)`` makes an artifact,
``slmdeploy.bench(...)`` measures it on a device, ``slmdeploy.analysis`` reads runs
back as DataFrames. Heavy libraries (torch, executorch) load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slmdeploy._version import __version__

if TYPE_CHECKING:
    from slmdeploy import analysis, bench, export

__all__ = ["__version__", "analysis", "bench", "export"]


def __getattr__(name: str) -> Any:
    # ``export`` and ``bench`` are callable packages (see ``_callable``): calling them calls
    # ``export.export`` / ``bench.bench``, and their other names stay reachable.
    if name in ("export", "bench", "analysis"):
        import importlib

        return importlib.import_module(f"slmdeploy.{name}")
    raise AttributeError(f"module 'slmdeploy' has no attribute {name!r}")
