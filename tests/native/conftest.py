"""Fixtures for the native harness: the host build (once per session) and small models.

The llama-tiny artifacts (``tiny_fp32``, ``tiny_8da4w``) come from tests/conftest.py. The
build goes to the default build directory (android_harness/build/host-release, or
$SLMDEPLOY_HARNESS_DIR/host-release), so a second session only re-links what changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from slmdeploy.harness.protocol import HarnessArgs

TOY_VOCAB = 64
TOY_PREFILL = 8


@pytest.fixture(scope="session")
def harness_binary() -> Path:
    from slmdeploy.harness import native

    return native.build(progress=False, jobs=2)


@pytest.fixture(scope="session")
def small_module_pte(tmp_path_factory) -> dict[str, Path]:
    """A two-input MLP lowered to XNNPACK (with one non-delegated op), plus its ETRecord."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    class SmallMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = torch.nn.Linear(16, 8)
            self.l2 = torch.nn.Linear(8, 8)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.l2(torch.relu(self.l1(x))) + y * y.sum()  # sum stays outside XNNPACK

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("small-module")
    program = torch.export.export(SmallMLP().eval(), (torch.randn(2, 16), torch.randn(2, 8)))
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], generate_etrecord=True)
    et = edge.to_executorch()
    (out / "model.pte").write_bytes(et.buffer)
    et.get_etrecord().save(str(out / "etrecord.bin"))
    return {"pte": out / "model.pte", "etrecord": out / "etrecord.bin"}


@pytest.fixture(scope="session")
def small_tflite(tmp_path_factory) -> Path:
    """A one-signature .tflite from litert-torch (a Linear + ReLU)."""
    import litert_torch
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()).eval()
    path = tmp_path_factory.mktemp("small-tflite") / "model.tflite"
    litert_torch.convert(module, (torch.randn(2, 16),)).export(str(path))
    return path


@pytest.fixture(scope="session")
def toy_lm_tflite(tmp_path_factory) -> dict:
    """A toy LM in the TFLite exporter's convention (slmdeploy.llm-kvio/1), tiny.

    Signatures ``prefill`` (8 tokens) and ``decode`` (1 token): ``tokens`` int32[1, T],
    ``input_pos`` int32[T] and a state ``h_cache`` float32[1, 16] in, ``logits`` [1, V] and
    the updated ``h_cache`` out -- the shape of an I/O KV cache. The logits depend on every
    token, position and on the carried state, so a wrong token, position or state binding
    changes the greedy sequence.
    """
    import litert_torch
    import torch

    class ToyLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = torch.nn.Embedding(TOY_VOCAB, 16)
            self.pos = torch.nn.Embedding(64, 16)
            self.out = torch.nn.Linear(16, TOY_VOCAB)

        def forward(self, tokens, input_pos, h_cache):
            h = torch.tanh(self.tok(tokens[0]) + self.pos(input_pos)).cumsum(0) + h_cache
            return {"logits": self.out(h[-1:]), "h_cache": h[-1:]}

    torch.manual_seed(0)
    module = ToyLM().eval()

    def sample(n: int) -> dict[str, torch.Tensor]:
        # input_pos first: the harness must bind inputs by name, not by position
        return {"input_pos": torch.arange(n, dtype=torch.int32), "tokens": torch.zeros(1, n, dtype=torch.int32),
                "h_cache": torch.zeros(1, 16)}

    converter = litert_torch.signature("prefill", module, sample_kwargs=sample(TOY_PREFILL))
    converter = converter.signature("decode", module, sample_kwargs=sample(1))
    path = tmp_path_factory.mktemp("toy-lm") / "toy_lm.tflite"
    converter.convert().export(str(path))
    return {"path": path, "vocab": TOY_VOCAB, "prefill": TOY_PREFILL}


class Harness:
    """Runs the native harness (and the Python one, for comparisons) with protocol arguments."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    SMALL = {"prompt_tokens": 16, "gen_tokens": 8, "warmup": 1, "runs": 3, "telemetry_interval_ms": 50}

    @classmethod
    def llm_args(cls, artifact, trace: Path, **overrides) -> HarnessArgs:
        """The arguments slmdeploy.bench passes for an LLM artifact, at test sizes."""
        llm = artifact.manifest.llm
        fields = {"max_seq_len": llm.max_seq_len, "vocab_size": llm.vocab_size, **cls.SMALL, **overrides}
        return HarnessArgs(model=str(fields.pop("model", artifact.model_file)), trace=str(trace), **fields)

    def argv(self, args: HarnessArgs | list[str]) -> list[str]:
        return [str(self.binary), *(args.argv() if isinstance(args, HarnessArgs) else args)]

    def run(self, args: HarnessArgs | list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(args), capture_output=True, text=True, timeout=timeout, **kwargs)

    @staticmethod
    def run_python(args: HarnessArgs, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "slmdeploy.harness.python_harness", *args.argv()],
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def harness(harness_binary) -> Harness:
    return Harness(harness_binary)
