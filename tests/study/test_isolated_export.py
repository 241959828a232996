"""A study's exports run in a process of their own (study/isolated_export.py): same artifact, same errors."""

import os

import pytest

from slmdeploy.errors import ExportError
from slmdeploy.study.isolated_export import export_isolated


def test_a_build_runs_in_a_child_and_the_next_call_is_a_cache_hit_in_process(tmp_path):
    seq = 24 + os.getpid() % 8  # a max_seq_len no other test exports: this one is a build
    built = export_isolated("llama-micro", "android-portable-fp32", tmp_path / "a", max_seq_len=seq)
    assert not built.cache_hit and built.manifest.llm.max_seq_len == seq
    assert built.manifest.verification["status"] == "passed"
    again = export_isolated("llama-micro", "android-portable-fp32", tmp_path / "b", max_seq_len=seq)
    assert again.cache_hit and again.manifest.model_file.sha256 == built.manifest.model_file.sha256


def test_an_export_error_in_the_child_is_raised_as_itself():
    with pytest.raises(ExportError, match="cannot be exported as an LLM: multi-head latent attention") as err:
        export_isolated("minicpm3-4b@2l", "host-xnnpack", "unused-out-dir")
    assert "\n" not in str(err.value)
