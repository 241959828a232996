"""llama.cpp file types: what each target's GGUF holds, how it is made, and how it compares.

Quantized files are made by ``llama_model_quantize`` with its default parameters: the
library call that ``tools/quantize`` (``llama-quantize IN OUT Q4_0``) wraps, so the tensor
mix is llama.cpp's own (``output.weight`` in Q6_K for most types, a fallback type for rows
too short for a k-quant block, norms kept f32).

``quantization.scheme`` in the manifest places each type in slmdeploy's cross-runtime names
by what the kernels compute, so a comparison with ExecuTorch or LiteRT puts like next to
like: ggml's CPU kernels quantize the activations of a quantized matrix product to int8 on
the fly (q8_0: blocks of 32; q8_K: blocks of 256), so ``q8_0`` is ``8da8w`` and ``q4_0``
is ``8da4w`` (int4 weights in blocks of 32, like ExecuTorch's ``8da4w`` with group size
32). ``q4_k_m`` is a mix of 4- and 6-bit k-quants that no other runtime makes: its scheme is
its own name. Where llama.cpp differs from the other runtimes' schemes (embeddings are
quantized too, the output matrix gets 6 bits) the manifest says so in ``tensor_types``,
``embeddings``, ``output`` and ``bits_per_weight``.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from pathlib import Path
from typing import Any

from slmdeploy.errors import ExportError

FLOAT = {"fp32": "f32", "fp16": "f16"}  # target quantization -> converter outtype
FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
QUANTIZATIONS = (*FLOAT, *FTYPES)

_DESCRIPTION: dict[str, dict[str, Any]] = {
    "fp32": {"scheme": "fp32", "ggml_ftype": "ALL_F32", "weights": "fp32", "activations": "fp32"},
    "fp16": {"scheme": "fp16", "ggml_ftype": "MOSTLY_F16", "weights": "fp16",
             "activations": "fp16 in matrix products (ggml converts them to the weights' type), fp32 elsewhere"},
    "q8_0": {"scheme": "8da8w", "ggml_ftype": "MOSTLY_Q8_0", "weights": "int8", "group_size": 32,
             "weight_quantization": "symmetric, one fp16 scale per block of 32",
             "activations": "int8 dynamic (q8_0: blocks of 32, fp16 scale), fp32 elsewhere"},
    "q4_0": {"scheme": "8da4w", "ggml_ftype": "MOSTLY_Q4_0", "weights": "int4", "group_size": 32,
             "weight_quantization": "one fp16 scale per block of 32, values -8..7",
             "activations": "int8 dynamic (q8_0: blocks of 32, fp16 scale), fp32 elsewhere"},
    "q4_k_m": {"scheme": "q4_k_m", "ggml_ftype": "MOSTLY_Q4_K_M", "weights": "int4 + int6 mix", "group_size": 32,
               "weight_quantization": "Q4_K (super-blocks of 256: 8 blocks of 32, 6-bit scales and mins) for most "
                                      "matrices, Q6_K for attn_v / ffn_down of some layers and the output",
               "activations": "int8 dynamic (q8_K: blocks of 256), fp32 elsewhere"},
}


def scheme(quantization: str) -> str:
    """The cross-runtime scheme of a llama.cpp file type (``q4_0`` -> ``8da4w``)."""
    return _DESCRIPTION[quantization]["scheme"]


def describe(quantization: str, gguf_path: Path, params: int | None) -> dict[str, Any]:
    """The manifest's ``quantization``: the scheme, what llama.cpp made of each tensor, bits per weight."""
    from slmdeploy.llamacpp.bindings import gguf

    reader = gguf().GGUFReader(str(gguf_path))
    types = Counter(t.tensor_type.name for t in reader.tensors)
    by_name = {t.name: t.tensor_type.name for t in reader.tensors}
    weight_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    elements = sum(int(t.n_elements) for t in reader.tensors)
    desc = dict(_DESCRIPTION[quantization])
    desc.update(
        method="convert_hf_to_gguf.py" if quantization in FLOAT else "llama_model_quantize (tools/quantize), default mix",
        tensor_types=dict(sorted(types.items())),
        embeddings=by_name.get("token_embd.weight"),
        output=by_name.get("output.weight", "tied to token_embd"),
        bits_per_weight=round(8 * weight_bytes / elements, 3) if elements else None,
    )
    if params is not None and elements and elements != params:
        desc["gguf_elements"] = elements
    return desc


def quantize(source: Path, out: Path, quantization: str, threads: int = 0) -> Path:
    """``out``: ``source`` (an f32 GGUF) quantized to ``quantization`` by llama.cpp."""
    from slmdeploy.llamacpp.bindings import llama_cpp

    lc = llama_cpp()
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, FTYPES[quantization])
    params.nthread = threads
    code = lc.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params))
    if code != 0 or not out.is_file():
        raise ExportError(f"llama_model_quantize could not make {quantization} from {source.name} (returned {code}).")
    return out
