"""Weight quantization applied to the eager module before torch.export (torchao source transforms)."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch

from slmdeploy.errors import ExportError

# scheme -> (torchao linear config name in executorch's quantize_model_, default group size)
SCHEMES = {"8da4w": ("8da4w", 32), "8da8w": ("8da8w", 0), "4w": ("4w", 32), "8w": ("8w", 0)}
FLOAT_SCHEMES = {"fp32": torch.float32, "fp16": torch.float16}
# Delegates that take fp16 as a compile option (their compute precision): the program keeps
# fp32 weights and I/O and the delegate computes in fp16 on the device.
DELEGATE_PRECISION = {"coreml", "vulkan", "qnn", "mps"}


def _delegate_fp16(scheme: str, delegates: tuple[str, ...]) -> bool:
    return scheme == "fp16" and bool(DELEGATE_PRECISION.intersection(delegates))


def describe(scheme: str, options: dict[str, Any], delegates: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest's ``quantization`` entry."""
    if _delegate_fp16(scheme, delegates):
        return {"scheme": "fp16", "weights": "fp16", "activations": "fp16",
                "method": "delegate compute precision (the program's weights and I/O stay fp32)"}
    if scheme in FLOAT_SCHEMES:
        return {"scheme": scheme, "weights": scheme, "activations": scheme}
    if scheme not in SCHEMES:
        raise ExportError(
            f"quantization {scheme!r} is not supported by the ExecuTorch exporter; "
            f"use one of {sorted(FLOAT_SCHEMES) + sorted(SCHEMES)}."
        )
    _, default_group = SCHEMES[scheme]
    bits = 4 if "4w" in scheme else 8
    return {
        "scheme": scheme,
        "weights": f"int{bits}",
        "activations": "int8 dynamic" if scheme.startswith("8da") else "fp32",
        "group_size": int(options.get("group_size", default_group)),
        "method": "torchao",
    }


def apply(module: torch.nn.Module, scheme: str, options: dict[str, Any], delegates: tuple[str, ...] = ()) -> torch.nn.Module:
    """Quantize linear layers in place (GPT-2's Conv1D ones too); layers whose shape the group size does not
    divide stay float."""
    if _delegate_fp16(scheme, delegates):
        return module
    if scheme in FLOAT_SCHEMES:
        return module.to(FLOAT_SCHEMES[scheme])
    from executorch.extension.llm.export.quantize import quantize_model_

    from slmdeploy.export.executorch.transforms import replace_conv1d

    desc = describe(scheme, options)
    config_name, _ = SCHEMES[scheme]
    replace_conv1d(module)  # GPT-2's projections are Conv1D, which the quantizers would skip
    with contextlib.redirect_stdout(io.StringIO()):  # quantize_model_ prints per-layer notes
        quantize_model_(
            module,
            qlinear_config=config_name,
            qlinear_group_size=desc["group_size"],
            skip_incompatible_shapes=True,
        )
    return module
