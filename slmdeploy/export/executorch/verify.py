"""Parity of an exported ExecuTorch program with eager PyTorch, on this host's CPU.

Float programs must match the eager logits within ``FLOAT_TOLERANCE`` (max abs difference
relative to the logits' scale); quantized programs are judged by how often they pick the
same top-1 token as the eager float model, with the eager model's own tokens fed to both
(teacher forcing), so one early disagreement does not cascade.
"""

from __future__ import annotations

from typing import Any

import torch

FLOAT_TOLERANCE = 1e-3
QUANT_MIN_TOP1 = 0.8


def run_program(path, inputs: list[torch.Tensor], method: str = "forward"):
    from executorch.runtime import Runtime

    program = Runtime.get().load_program(str(path))
    return program.load_method(method).execute(inputs)


def verify_llm(program_path, reference, quantized: bool, prompt_len: int = 8, decode_steps: int = 8) -> dict[str, Any]:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(program_path)).load_method("forward")
    vocab = reference.model.config.get_text_config().vocab_size
    gen = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, vocab, (1, prompt_len), generator=gen)
    pos = torch.arange(prompt_len)
    max_diff, scale, agree, total = 0.0, 0.0, 0, 0
    with torch.no_grad():
        for step in range(decode_steps + 1):
            ref = reference(tokens, pos)
            out = method.execute([tokens, pos])[0]
            max_diff = max(max_diff, (out - ref).abs().max().item())
            scale = max(scale, ref.abs().max().item())
            agree += int(out.argmax(-1).item() == ref.argmax(-1).item())
            total += 1
            next_pos = int(pos[-1]) + 1
            tokens, pos = ref.argmax(-1, keepdim=True), torch.tensor([next_pos])
    relative = max_diff / max(1.0, scale)
    top1 = agree / total
    result = {
        "positions": total,
        "max_abs_diff": max_diff,
        "relative_diff": relative,
        "top1_agreement": top1,
    }
    if quantized:
        result.update(status="passed" if top1 >= QUANT_MIN_TOP1 else "failed", criterion=f"top1_agreement >= {QUANT_MIN_TOP1}")
    else:
        result.update(
            status="passed" if relative <= FLOAT_TOLERANCE else "failed",
            criterion=f"max|logits - eager| / max(1, max|eager|) <= {FLOAT_TOLERANCE}",
        )
    return result


def verify_module(program_path, reference, inputs, quantized: bool) -> dict[str, Any]:
    outs = run_program(program_path, list(inputs))
    with torch.no_grad():
        refs = reference(*inputs)
    refs = refs if isinstance(refs, (tuple, list)) else (refs,)
    max_diff = max((o - r).abs().max().item() for o, r in zip(outs, refs))
    scale = max(r.abs().max().item() for r in refs)
    relative = max_diff / max(1.0, scale)
    tolerance = 0.05 if quantized else FLOAT_TOLERANCE
    return {
        "max_abs_diff": max_diff,
        "relative_diff": relative,
        "status": "passed" if relative <= tolerance else "failed",
        "criterion": f"max|out - eager| / max(1, max|eager|) <= {tolerance}",
    }
