"""Session-wide fixtures: an isolated slmdeploy cache and the CI-size artifacts, exported once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Exports are cached by content (the exporter's own code is part of the key), so a cache kept
# between local test runs is safe; CI starts from a fresh clone and builds it once.
os.environ.setdefault("SLMDEPLOY_CACHE", str(REPO / "build" / "test-cache"))


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def tiny_fp32(artifacts_dir):
    """llama-tiny for this host's CPU, fp32, XNNPACK."""
    from slmdeploy.export import export

    return export("llama-tiny", "host-xnnpack", artifacts_dir / "tiny-fp32", progress=False)


@pytest.fixture(scope="session")
def tiny_8da4w(artifacts_dir):
    """llama-tiny with int8 dynamic activations / int4 weights, XNNPACK."""
    from slmdeploy.export import export

    return export("llama-tiny", "host-xnnpack-8da4w", artifacts_dir / "tiny-8da4w", progress=False)


@pytest.fixture(scope="session")
def bundle() -> list:
    """The native harness built for this host (the emulated phone runs host binaries): binary, then libraries."""
    from slmdeploy.harness import native

    native.build(progress=False, jobs=2)
    return native.bundle_for_abi(native.host_abi())


@pytest.fixture(scope="session")
def llama_toolchain():
    """The pinned llama.cpp built for this host (scripts/install.sh builds it; else here, once per machine:
    it lives in $SLMDEPLOY_TOOLCHAINS or ~/.cache/slmdeploy/toolchains, outside the test cache)."""
    from slmdeploy import llamacpp

    return llamacpp.toolchain(progress=False, jobs=2)


@pytest.fixture(scope="session")
def gguf_q4_0(llama_toolchain, artifacts_dir):
    """llama-tiny as a GGUF, Q4_0 (llama.cpp's converter, then its quantizer)."""
    from slmdeploy.export import export

    return export("llama-tiny", "gguf-q4_0", artifacts_dir / "tiny-gguf-q4_0", progress=False)


@pytest.fixture(scope="session")
def lookup_model():
    """(module, example inputs): a 4-row lookup table. Any id outside [0, 4) makes the method
    fail, so a run shows which ids it was fed (random integer inputs are only ever 0 or 1)."""
    import torch

    torch.manual_seed(0)
    module = torch.nn.Embedding(4, 8).eval()
    return module, (torch.zeros(3, dtype=torch.long),)


@pytest.fixture(scope="session")
def hf_checkpoint(tmp_path_factory) -> Path:
    """A real Hugging Face checkpoint directory: tiny random Llama + a real (tiny) tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("hf-checkpoint") / "tiny-llama-hf"
    torch.manual_seed(7)
    config = LlamaConfig(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    vocab = {f"w{i}": i for i in range(config.vocab_size - 1)} | {"[UNK]": config.vocab_size - 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    return path
