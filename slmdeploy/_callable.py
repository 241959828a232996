"""Packages that are also their main function: ``slmdeploy.export(...)``, ``slmdeploy.bench(...)``.

``slmdeploy.export`` names both the export package and the function users call. Python binds
a package to its parent's attribute as soon as any of its submodules is imported, which
would shadow a plain function depending on import order; a callable package module keeps
the one public spelling working in every order.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    class CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallablePackage
