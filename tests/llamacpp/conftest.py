"""Fixtures for llama.cpp beyond the session-wide ones (tests/conftest.py: ``llama_toolchain``, ``gguf_q4_0``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gguf_f32(llama_toolchain, artifacts_dir):
    from slmdeploy.export import export

    return export("llama-tiny", "gguf-f32", artifacts_dir / "tiny-gguf-f32", progress=False)


@pytest.fixture(scope="session")
def gguf_harness(llama_toolchain) -> Path:
    """The host build of the native harness, with its llama.cpp backend."""
    from slmdeploy.harness import native

    return native.build(progress=False, jobs=2)
