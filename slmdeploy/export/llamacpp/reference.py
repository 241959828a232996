"""The eager twin of a quantized GGUF: the PyTorch model with the GGUF's own weights, dequantized.

A quantized artifact is judged against the same quantization run eagerly (docs/targets.md,
"Verification"). For GGUF that twin is exact by construction: every tensor llama.cpp stored
in a non-f32 type is read back with gguf-py's reference dequantization (the converter's own
package) and put in place of the float weight, so the twin computes with exactly the
weights the file holds, whatever mix ``llama_model_quantize`` chose. What is left between
the twin and llama.cpp is what the kernels do (int8 activations in quantized products, an
f16 KV cache), which is what the verdict is about.

The converter reorders the rows of some projections for ggml's rotary layout (llama's
q/k). The twin undoes it by trying the identity and the converter's permutation by head
count for each tensor and keeping the order that matches the float weight; a tensor that
matches under none of them fails the export (the mapping is wrong, not the numbers).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from slmdeploy.errors import ExportError

# A stored tensor this far (relative Frobenius norm) from its float weight is a different tensor:
# int4 blocks are ~0.1 away, a row order that is wrong is ~1.4 away.
MATCH_LIMIT = 0.5


def _llama_row_order(rows: int, heads: int) -> np.ndarray | None:
    """Where each stored row came from, for the converter's ``LlamaModel.permute(w, heads)``."""
    if heads <= 0 or rows % (2 * heads):
        return None
    index = np.arange(rows)
    return index.reshape(heads, 2, rows // heads // 2).swapaxes(1, 2).reshape(rows)


def _unpermuted(values: np.ndarray, weight: np.ndarray, head_counts: set[int]) -> tuple[np.ndarray, float]:
    """``values`` in the row order that matches ``weight`` best, with its relative distance."""
    norm = max(float(np.linalg.norm(weight)), 1e-12)
    best, best_err = values, float(np.linalg.norm(values - weight)) / norm
    for heads in head_counts:
        order = _llama_row_order(values.shape[0], heads)
        if order is None:
            continue
        candidate = np.empty_like(values)
        candidate[order] = values
        err = float(np.linalg.norm(candidate - weight)) / norm
        if err < best_err:
            best, best_err = candidate, err
    return best, best_err


def _architecture(gguf, reader):
    field = reader.fields["general.architecture"]
    name = bytes(field.parts[field.data[0]]).decode()
    arch = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}.get(name)
    if arch is None:
        raise ExportError(f"gguf-py does not know the architecture {name!r} of the converted model.")
    return arch


def twin(model: torch.nn.Module, gguf_path: Path, config: dict) -> torch.nn.Module:
    """A copy of ``model`` whose weights are the GGUF's quantized ones, dequantized."""
    from slmdeploy.llamacpp.bindings import gguf as gguf_module

    gguf = gguf_module()
    reader = gguf.GGUFReader(str(gguf_path))
    layers = int(config.get("num_hidden_layers") or config.get("n_layer") or 0)
    names = gguf.get_tensor_name_map(_architecture(gguf, reader), layers)
    stored = {t.name: t for t in reader.tensors}
    heads = {int(h) for h in (config.get("num_attention_heads"), config.get("num_key_value_heads")) if h}
    result = copy.deepcopy(model).eval()
    for name, param in result.named_parameters():
        key = names.get_name(name, try_suffixes=(".weight", ".bias"))
        tensor = stored.get(key) if key else None
        if tensor is None or tensor.tensor_type == gguf.GGMLQuantizationType.F32:
            continue  # not stored (tied) or stored exactly
        values = gguf.dequantize(tensor.data, tensor.tensor_type).astype(np.float32).reshape(tuple(param.shape))
        weight = param.detach().cpu().numpy()
        values, err = _unpermuted(values, weight, heads) if values.ndim == 2 else (values, 0.0)
        if err > MATCH_LIMIT:
            raise ExportError(f"GGUF tensor {key} ({tensor.tensor_type.name}) does not match {name} "
                              f"(relative distance {err:.2f}); the converter's layout is not understood here.")
        with torch.no_grad():
            param.copy_(torch.from_numpy(values))
    return result
