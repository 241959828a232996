"""The artifact manifest: the contract between export and everything downstream.

Downstream code (deployment, harness arguments, analysis) reads the manifest and never
guesses from file names. ``SCHEMA`` is bumped on any incompatible change.

A manifest is untrusted input (an artifact directory can come from anywhere): it is read
only through ``Manifest.from_json``/``from_dict``, which check every field's type (pydantic,
strict) and what the types cannot say (``Manifest.check``), so code downstream never meets a
string where it expects a number, a path outside the artifact, or an artifact without a model.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
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
# llama.cpp's own: the file is a GGUF, the runtime builds the graph and holds the KV cache (allocated when a
# context is created, f16 by default); token ids go in as llama_decode batches at explicit positions, and
# the logits of the last position come out (docs/targets.md, "KV cache and calling conventions").
LLM_GGUF_CONVENTION = "llama.cpp/gguf"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """A manifest that does not describe a usable artifact; ``str(err)`` is one line naming the field."""


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
    # "internal" (program buffers), "state" (Core ML state), "io" (signature I/O), "runtime" (llama.cpp allocates it)
    kv_cache: str = "internal"
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
        return next(f for f in self.files if f.role == "model")  # exactly one: ``check`` holds it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def from_json(cls, text: str | bytes) -> "Manifest":
        """The manifest ``text`` holds; ``ManifestError`` for anything else (bad JSON, wrong types, unsafe paths)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ManifestError(f"not JSON ({_one_line(err)})") from None
        if not isinstance(data, dict):
            raise ManifestError(f"expected a JSON object, found {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise ManifestError(f"manifest schema {str(data.get('schema'))[:80]!r}, expected {SCHEMA!r}")
        from pydantic import ValidationError

        try:  # strict JSON mode: no "5" for 5, no true for 1, no float for an int
            manifest = _adapter().validate_json(text, strict=True)
        except ValidationError as err:
            raise ManifestError(_first_problem(err)) from None
        manifest.check()
        return manifest

    @classmethod
    def from_dict(cls, data: Any) -> "Manifest":
        try:
            text = json.dumps(data, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ManifestError(f"not JSON data ({_one_line(err)})") from None
        return cls.from_json(text)

    def check(self) -> None:
        """What the types cannot say: one model file, paths inside the artifact, sane numbers."""
        if not self.files:
            raise ManifestError("files is empty: an artifact lists its model file")
        models = [f for f in self.files if f.role == "model"]
        if len(models) != 1:
            raise ManifestError(f"files lists {len(models)} entries with role 'model'; an artifact has exactly one")
        seen: set[str] = set()
        for i, entry in enumerate(self.files):
            check_relative_path(entry.path, f"files[{i}].path")
            if entry.path in seen:
                raise ManifestError(f"files[{i}].path {entry.path!r} is listed twice")
            seen.add(entry.path)
            if not _SHA256.fullmatch(entry.sha256):
                raise ManifestError(f"files[{i}].sha256 {entry.sha256[:80]!r} is not 64 lowercase hex digits")
            if entry.size < 0:
                raise ManifestError(f"files[{i}].size {entry.size} is negative")
        if not self.methods:
            raise ManifestError("methods is empty: an artifact has at least one method")
        for m in self.methods:
            for t in (*m.inputs, *m.outputs):
                if any(isinstance(d, int) and d < 0 for d in t.shape):
                    raise ManifestError(f"method {m.name!r}: tensor {t.name!r} has a negative dimension {t.shape}")
        llm = self.llm
        if llm is not None:
            for name in ("max_seq_len", "vocab_size"):
                if getattr(llm, name) < 1:
                    raise ManifestError(f"llm.{name} must be at least 1, got {getattr(llm, name)}")
            if llm.prefill_seq_len is not None and not 1 <= llm.prefill_seq_len <= llm.max_seq_len:
                raise ManifestError(f"llm.prefill_seq_len {llm.prefill_seq_len} is outside 1..max_seq_len")


def check_relative_path(path: str, what: str) -> str:
    """``path`` if it names a file below a directory: relative, no ``..``, no backslash or NUL."""
    pure = PurePosixPath(path)
    if (not path or pure.is_absolute() or ".." in pure.parts or "\\" in path or "\0" in path
            or re.match(r"[A-Za-z]:", path) or pure.parts in ((), (".",))):
        raise ManifestError(f"{what} {path[:200]!r} leaves the artifact directory; "
                            "a manifest names files relative to it (e.g. 'model.pte')")
    return path


@functools.lru_cache(maxsize=1)
def _adapter():
    from pydantic import TypeAdapter

    return TypeAdapter(Manifest)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())[:300]


def _first_problem(err) -> str:
    """pydantic's first problem as ``field.path: message`` (one line), with how many more fields are wrong."""
    problems: dict[str, list[str]] = {}
    for e in err.errors(include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".") or "manifest"
        # a union (int | str) reports once per member, its type appended to the location: one field
        problems.setdefault(re.sub(r"\.(int|str|float|bool)$", "", where), []).append(e["msg"])
    (where, messages), *rest = problems.items()
    more = f" (and {len(rest)} more fields)" if rest else ""
    return f"{where}: {' or '.join(messages)}{more}"
