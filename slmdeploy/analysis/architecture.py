"""The architecture facts a survey figure groups by: vocabulary, heads, and the attention type they make."""

from __future__ import annotations

from typing import Any

COLUMNS = ("arch_vocab_size", "arch_layers", "arch_heads", "arch_kv_heads", "arch_attention")


def attention_type(heads: int | None, kv_heads: int | None) -> str | None:
    """MHA (every head its own keys/values), MQA (one shared), GQA (groups in between); None if unknown."""
    if not heads or not kv_heads:
        return None
    if kv_heads == heads:
        return "MHA"
    return "MQA" if kv_heads == 1 else "GQA"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def architecture_columns(manifest: dict[str, Any]) -> dict[str, Any]:
    """From a manifest's ``model.architecture`` (and ``llm.vocab_size``); None where a fact is absent."""
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    arch = model.get("architecture") if isinstance(model.get("architecture"), dict) else {}
    llm = manifest.get("llm") if isinstance(manifest.get("llm"), dict) else {}
    heads, kv_heads = _int(arch.get("heads")), _int(arch.get("kv_heads"))
    return {
        "arch_vocab_size": _int(llm.get("vocab_size")) or _int(arch.get("vocab_size")),
        "arch_layers": _int(arch.get("layers")),
        "arch_heads": heads,
        "arch_kv_heads": kv_heads,
        "arch_attention": attention_type(heads, kv_heads),
    }
