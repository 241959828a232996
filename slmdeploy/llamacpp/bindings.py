"""The Python side of the pinned llama.cpp: llama-cpp-python's bindings and gguf-py, on the one build.

``llama_cpp()`` imports llama-cpp-python with ``LLAMA_CPP_LIB_PATH`` pointing at the
toolchain's ``libllama.so`` (its documented override), so the bindings run the very library
the native harness links and ``llama-bench`` uses. The bindings are pinned to the same
release as the source (their ctypes signatures follow that llama.cpp's ``llama.h``).
``gguf()`` imports the gguf-py copy vendored with the converter, which reads what that
converter writes.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from slmdeploy.errors import ToolchainError
from slmdeploy.llamacpp import source
from slmdeploy.llamacpp.build import Toolchain, find

LIB_PATH_ENV = "LLAMA_CPP_LIB_PATH"


def _built(tools: Toolchain | None) -> Toolchain:
    tools = tools or find()
    if tools is None:
        raise ToolchainError("llama.cpp is not built for this host: `slmdeploy harness build` fetches and builds it "
                             "(or export a gguf-* target, which does too).")
    return tools


def llama_cpp(tools: Toolchain | None = None) -> ModuleType:
    """The ``llama_cpp`` module on the toolchain's libllama (which must be built)."""
    if "llama_cpp" in sys.modules:
        return sys.modules["llama_cpp"]
    tools = _built(tools)
    os.environ[LIB_PATH_ENV] = str(tools.lib_dir)
    try:
        import llama_cpp as module
    except ImportError as err:
        raise ToolchainError(
            f"llama-cpp-python is not installed ({err}): `CMAKE_ARGS=-DLLAMA_BUILD=OFF pip install "
            f"llama-cpp-python=={source.VERSION}` (scripts/install.sh does it; the flag skips its own libllama build)."
        ) from None
    except (OSError, FileNotFoundError, RuntimeError) as err:
        raise ToolchainError(f"llama-cpp-python could not load {tools.lib_dir}/libllama.so: {err}") from None
    if getattr(module, "__version__", None) != source.VERSION:
        raise ToolchainError(
            f"llama-cpp-python {getattr(module, '__version__', '?')} is installed, but slmdeploy's llama.cpp is the one "
            f"vendored by {source.VERSION}: `pip install llama-cpp-python=={source.VERSION}`."
        )
    global _quiet
    _quiet = module.llama_log_callback(_silent)  # kept alive here: llama.cpp calls it later
    module.llama_log_set(_quiet, None)
    return module


_quiet = None


def _silent(level, text, user_data) -> None:
    """llama.cpp logs every load to stderr; failures reach the caller as return codes."""


def gguf(tools: Toolchain | None = None) -> ModuleType:
    """The gguf-py package vendored with the converter (GGUFReader, quants, tensor names)."""
    if "gguf" in sys.modules:
        return sys.modules["gguf"]
    tools = _built(tools)
    path = str(tools.gguf_py)
    if path not in sys.path:
        sys.path.insert(0, path)
    import gguf as module

    return module
