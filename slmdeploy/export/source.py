"""Where a model comes from: a zoo architecture, a local HF checkpoint, or an nn.Module.

A source knows its identity (name, architecture facts, parameter count) and a content
fingerprint *without* building the model, so the export cache can answer first.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from slmdeploy import zoo
from slmdeploy.errors import UnknownModelError

ZOO_SEED = 0
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "generation_config.json",
)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """The file's sha256, hashed once per version of the file in this process.

    A study benches one artifact (and one harness bundle) hundreds of times; re-hashing
    hundreds of MiB before each run would cost more host CPU than the run itself. The
    memo is keyed by what any write changes (inode, size, mtime and ctime, in ns), as
    git's index is, so an edited or replaced file is hashed again.
    """
    st = os.stat(path)
    key, stamp = (st.st_dev, st.st_ino), (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    known = _HASHED.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    _HASHED[key] = (stamp, digest.hexdigest())
    return digest.hexdigest()


_HASHED: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}  # (device, inode) -> (stamp, sha256)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# Older families name the same facts differently (GPT-2/Cerebras: n_embd/n_layer/n_head/n_inner/n_positions;
# BLOOM: n_layer/n_head; OPT: ffn_dim); the first key present wins.
_ALIASES = {
    "layers": ("num_hidden_layers", "n_layer"),
    "hidden_size": ("hidden_size", "n_embd", "n_embed"),
    "heads": ("num_attention_heads", "n_head"),
    "intermediate_size": ("intermediate_size", "ffn_dim", "n_inner"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions"),
    "activation": ("hidden_act", "hidden_activation", "activation_function"),
}
# Families whose config class ties the LM head to the embeddings when config.json does not say.
_TIED_BY_DEFAULT = {"opt", "bloom", "gpt2", "gemma", "gemma2", "recurrent_gemma", "minicpm3"}


def _first(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((config[k] for k in keys if config.get(k) is not None), None)


def architecture_facts(config: dict[str, Any]) -> dict[str, Any]:
    """The facts that decide latency and memory, named the same for every family."""
    f = {k: _first(config, keys) for k, keys in _ALIASES.items()}
    heads, hidden = f["heads"], f["hidden_size"]
    if f["intermediate_size"] is None and config.get("model_type") in ("gpt2", "bloom") and hidden:
        f["intermediate_size"] = 4 * hidden  # n_inner: null means 4 x hidden
    return {
        "architecture": (config.get("architectures") or [config.get("model_type")])[0],
        "model_type": config.get("model_type"),
        "layers": f["layers"],
        "hidden_size": hidden,
        "heads": heads,
        "kv_heads": config.get("num_key_value_heads") or heads,
        "head_dim": config.get("head_dim") or (hidden // heads if hidden and heads else None),
        "intermediate_size": f["intermediate_size"],
        "vocab_size": config.get("vocab_size"),
        "max_position_embeddings": f["max_position_embeddings"],
        "tie_word_embeddings": config.get("tie_word_embeddings", config.get("model_type") in _TIED_BY_DEFAULT),
        "activation": f["activation"],
    }


@dataclass
class ModelSource:
    """A model to export. ``build()`` makes the eager float32 module."""

    name: str
    kind: str  # "zoo" | "hf" | "module"
    fingerprint: str
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    builder: Callable[[], Any] | None = None
    example_inputs: tuple[Any, ...] | None = None

    @property
    def is_llm(self) -> bool:
        return self.kind in ("zoo", "hf")

    def facts(self) -> dict[str, Any]:
        return architecture_facts(self.config) if self.config else {}

    def tokenizer_files(self) -> list[Path]:
        if self.path is None:
            return []
        return [self.path / n for n in TOKENIZER_FILES if (self.path / n).is_file()]

    def build(self):
        """The eager model in float32, eval mode."""
        import torch

        if self.builder is not None:
            return self.builder()
        from transformers import AutoConfig, AutoModelForCausalLM

        if self.kind == "zoo":
            config = AutoConfig.for_model(**self.config)
            torch.manual_seed(ZOO_SEED)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        else:
            try:
                model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32)
            except (OSError, ValueError) as err:
                raise UnknownModelError(
                    f"cannot load the checkpoint in {self.path}: {str(err).splitlines()[0]} "
                    "Check that it holds config.json and model.safetensors from save_pretrained()."
                ) from None
        return model.eval()


_DEPTH = re.compile(r"^(?P<name>.+)@(?P<layers>\d+)l$")


def reduce_depth(config: dict[str, Any], layers: int) -> dict[str, Any]:
    """The config with only its first ``layers`` layers: same widths, heads, vocabulary and layer
    pattern (per-layer lists are cut), so a 1B-4B model exports and verifies in seconds."""
    reduced = copy.deepcopy(config)
    reduced["n_layer" if "n_layer" in reduced else "num_hidden_layers"] = layers
    if isinstance(reduced.get("layer_types"), list):
        reduced["layer_types"] = reduced["layer_types"][:layers]
    if "max_window_layers" in reduced:
        reduced["max_window_layers"] = min(reduced["max_window_layers"], layers)
    return reduced


def from_zoo(name: str) -> ModelSource:
    """A zoo entry; ``<entry>@<n>l`` (``tinyllama-1.1b@2l``) is the entry cut to its first n layers."""
    match = _DEPTH.match(name)
    entry = zoo.get(match["name"] if match else name)
    config = entry.hf_config
    if match:
        full, layers = architecture_facts(config)["layers"], int(match["layers"])
        if not 1 <= layers <= full:
            raise UnknownModelError(f"{name}: {entry.name} has {full} layers; ask for 1 to {full} (e.g. {entry.name}@2l).")
        config = reduce_depth(config, layers)
    fingerprint = hashlib.sha256(_canonical({"zoo": config, "seed": ZOO_SEED})).hexdigest()
    return ModelSource(name=name, kind="zoo", fingerprint=fingerprint, config=config)


def from_checkpoint(path: Path) -> ModelSource:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UnknownModelError(
            f"{path} is not a Hugging Face checkpoint: it has no config.json. "
            "Pass a directory written by save_pretrained(), or a zoo model name."
        )
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise UnknownModelError(f"{config_path} is not valid JSON ({err}); re-save the checkpoint.") from None
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not weights:
        raise UnknownModelError(f"{path} has config.json but no weights (*.safetensors); re-save the checkpoint.")
    digest = hashlib.sha256(_canonical(config))
    for file in weights:
        digest.update(file.name.encode())
        digest.update(sha256_file(file).encode())
    return ModelSource(name=path.resolve().name, kind="hf", fingerprint=digest.hexdigest(), config=config, path=path)


def resolve(model: Any) -> ModelSource:
    """A zoo name, a checkpoint directory, or an already-made ``ModelSource``."""
    if isinstance(model, ModelSource):
        return model
    candidate = Path(str(model)).expanduser()
    if candidate.is_dir():
        return from_checkpoint(candidate)
    if isinstance(model, str) and ("/" in model or model.startswith(".")) and not candidate.exists():
        raise UnknownModelError(f"checkpoint directory {model} does not exist.")
    return from_zoo(str(model))


def from_module(name: str, module: Any, example_inputs: tuple[Any, ...]) -> ModelSource:
    """Any ``torch.nn.Module`` with example inputs (non-LLM models too); fingerprinted by its weights.

    Each build is a deep copy: exporters quantize and rewrite what they build, and the
    caller's module must come back from an export exactly as it went in.
    """
    digest = hashlib.sha256(name.encode())
    digest.update(repr(module).encode())
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for tensor in example_inputs:
        digest.update(repr((tuple(tensor.shape), str(tensor.dtype))).encode())
    return ModelSource(
        name=name,
        kind="module",
        fingerprint=digest.hexdigest(),
        builder=lambda: copy.deepcopy(module).eval(),
        example_inputs=tuple(example_inputs),
    )
