"""The artifact manifest: the contract between export and everything downstream.

Downstream code (deployment, harness arguments, analysis) reads the manifest and never
guesses from file names. ``SCHEMA`` is bumped on any incompatible change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "slmdeploy.manifest/1"
MANIFEST_NAME = "manifest.json"

# The calling convention of an exported decoder LLM (documented in docs/harness-protocol.md):
# forward(tokens: int64[1, seq], input_pos: int64[seq]) -> float32[1, vocab] (last position's logits).
LLM_CONVENTION = "slmdeploy.llm/1"
# The same with the KV cache as signature inputs and outputs (TFLite, see docs/targets.md):
# prefill(tokens: int32[1, P], input_pos: int32[P], k_cache_0, v_cache_0, ...) -> logits, k_cache_0, v_cache_0, ...
# and decode(...) likewise with one token; the caller feeds each call's cache outputs to the next call.
LLM_KV_IO_CONVENTION = "slmdeploy.llm-kvio/1"


@dataclass
class TensorSpec:
    name: str
    dtype: str
    shape: list[int | str]  # a str names a dynamic dimension, e.g. "seq"


@dataclass
class MethodSpec:
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass
class FileEntry:
    path: str  # relative to the artifact directory
    role: str  # "model" | "tokenizer" | "data"
    size: int
    sha256: str


@dataclass
class LLMSpec:
    convention: str
    max_seq_len: int
    vocab_size: int
    prefill_method: str
    decode_method: str
    dynamic_prefill: bool = True
    # Added in the multi-runtime exporters (absent in older manifests, read with these defaults):
    prefill_seq_len: int | None = None  # the prefill length when dynamic_prefill is False
    kv_cache: str = "internal"  # "internal" (program buffers), "state" (Core ML state), "io" (signature I/O)
    cache_tensors: list[str] = field(default_factory=list)  # state / I/O names of the cache, in order
    # The cache tensors' element type and shape (all alike), where the exporter states them; and the
    # output names in cache_tensors order where a runtime cannot give an output an input's name (Core ML).
    cache_dtype: str | None = None
    cache_shape: list[int] | None = None
    cache_outputs: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    name: str
    model: dict[str, Any]  # id, source, fingerprint, architecture facts, params
    runtime: str
    target: dict[str, Any]
    delegates: list[str]
    quantization: dict[str, Any]
    methods: list[MethodSpec]
    files: list[FileEntry]
    tools: dict[str, str]
    export: dict[str, Any]  # wall_s, stages, created_at, cache_key
    llm: LLMSpec | None = None
    delegation: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    @property
    def model_file(self) -> FileEntry:
        return next(f for f in self.files if f.role == "model")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        data = dict(data)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"manifest schema {data.get('schema')!r}, expected {SCHEMA!r}")
        data["methods"] = [
            MethodSpec(
                name=m["name"],
                inputs=[TensorSpec(**t) for t in m["inputs"]],
                outputs=[TensorSpec(**t) for t in m["outputs"]],
            )
            for m in data["methods"]
        ]
        data["files"] = [FileEntry(**f) for f in data["files"]]
        data["llm"] = LLMSpec(**data["llm"]) if data.get("llm") else None
        return cls(**data)
