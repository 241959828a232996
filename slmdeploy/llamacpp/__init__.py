"""llama.cpp as slmdeploy uses it: one pinned source, one host build, the Python bindings on it.

The source is the llama.cpp that the ``llama-cpp-python`` sdist on PyPI vendors
(``vendor/llama.cpp``: ``convert_hf_to_gguf.py``, ``gguf-py``, ``tools/quantize``,
``tools/llama-bench``), fetched once with ``pip download`` and checked against a pinned
sha256 (``source.py``). ``build.py`` compiles what slmdeploy needs of it for this host
(``libllama`` + ggml, ``llama-quantize``, ``llama-bench``) into a toolchain directory kept
between runs; the exporter, the parity check, both harnesses and the benchmarks all use
that one build, so a figure and a verdict always come from the same code.

    from slmdeploy import llamacpp
    tools = llamacpp.toolchain()        # fetch + build when missing; a Toolchain
    tools.quantize, tools.bench, tools.lib_dir, tools.convert_script
"""

from __future__ import annotations

from slmdeploy.llamacpp.build import Toolchain, toolchain
from slmdeploy.llamacpp.source import VERSION, source_dir

__all__ = ["VERSION", "Toolchain", "source_dir", "toolchain"]
