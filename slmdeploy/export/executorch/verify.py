"""Parity of an exported ExecuTorch program with eager PyTorch, on this host's CPU.

Float programs must match the eager logits within ``FLOAT_TOLERANCE`` (max abs difference
relative to the logits' scale); quantized programs are judged by how often they pick the
same top-1 token as the same quantized model run eagerly, and their agreement with the
float model is reported. The reference's own tokens are fed to both (teacher forcing), so
one early disagreement does not cascade.
"""

from __future__ import annotations

from typing import Any

import torch

from slmdeploy._stdio import native_stderr_silenced

FLOAT_TOLERANCE = 1e-3
QUANT_TOLERANCE = 0.05
QUANT_MIN_TOP1 = 0.8


def run_program(path, inputs: list[torch.Tensor], method: str = "forward"):
    from executorch.runtime import Runtime

    with native_stderr_silenced():
        program = Runtime.get().load_program(str(path))
        loaded = program.load_method(method)
    return loaded.execute(inputs)


def _llm_positions(method, references: dict, vocab: int, prompt_len: int, decode_steps: int) -> dict:
    """Prefill + teacher-forced decode; per reference: max abs diff, logit scale, top-1 matches."""
    gen = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, vocab, (1, prompt_len), generator=gen)
    pos = torch.arange(prompt_len)
    stats = {name: {"max_diff": 0.0, "scale": 0.0, "agree": 0} for name in references}
    total = 0
    with torch.no_grad():
        for _ in range(decode_steps + 1):
            out = method.execute([tokens, pos])[0]
            outs = {name: ref(tokens, pos) for name, ref in references.items()}
            for name, ref in outs.items():
                s = stats[name]
                s["max_diff"] = max(s["max_diff"], (out - ref).abs().max().item())
                s["scale"] = max(s["scale"], ref.abs().max().item())
                s["agree"] += int(out.argmax(-1).item() == ref.argmax(-1).item())
            total += 1
            tokens, pos = outs[next(iter(outs))].argmax(-1, keepdim=True), torch.tensor([int(pos[-1]) + 1])
    for s in stats.values():
        s["relative"] = s["max_diff"] / max(1.0, s["scale"])
        s["top1"] = s["agree"] / total
    stats["_positions"] = total
    return stats


PROMPT_LEN, DECODE_STEPS = 16, 16


def check_lengths(max_seq_len: int, prompt_len: int = PROMPT_LEN) -> tuple[int, int]:
    """(prompt tokens, decode steps) of the parity check: 16 + 16, cut to fit a shorter cache."""
    prompt = min(prompt_len, max(1, max_seq_len // 2))
    return prompt, max(1, min(DECODE_STEPS, max_seq_len - prompt))


def verify_llm(
    program_path, reference, quantized_reference=None, prompt_len: int = PROMPT_LEN, decode_steps: int = DECODE_STEPS
) -> dict[str, Any]:
    """Float: logits within tolerance of eager. Quantized: top-1 agreement with the same
    quantization run in eager PyTorch (what export is responsible for), plus the agreement
    with the float model (the quantization's own cost, reported, not judged: on random
    weights the logits are nearly flat and top-1 flips easily)."""
    from executorch.runtime import Runtime

    with native_stderr_silenced():
        method = Runtime.get().load_program(str(program_path)).load_method("forward")
    return judge_llm(method, reference, quantized_reference, prompt_len, decode_steps)


def judge_llm(method, reference, quantized_reference=None, prompt_len: int = 16, decode_steps: int = 16, *,
              float_tolerance: float = FLOAT_TOLERANCE, quant_tolerance: float = QUANT_TOLERANCE,
              min_top1: float = QUANT_MIN_TOP1) -> dict[str, Any]:
    """The verdict of ``verify_llm`` for any ``method`` with ``execute([tokens, input_pos]) -> [logits]``;
    a runtime whose kernels round differently passes its own tolerances."""
    vocab = reference.model.config.get_text_config().vocab_size
    refs = {"float": reference}
    if quantized_reference is not None:
        refs = {"quantized": quantized_reference, "float": reference}
    stats = _llm_positions(method, refs, vocab, prompt_len, decode_steps)
    flt = stats["float"]
    result: dict[str, Any] = {
        "positions": stats["_positions"],
        "max_abs_diff": flt["max_diff"],
        "relative_diff": flt["relative"],
        "top1_agreement": flt["top1"],
    }
    if quantized_reference is None:
        result.update(
            status="passed" if flt["relative"] <= float_tolerance else "failed",
            criterion=f"max|logits - eager| / max(1, max|eager|) <= {float_tolerance}",
        )
        return result
    q = stats["quantized"]
    result.update(
        top1_agreement_vs_quantized_eager=q["top1"],
        relative_diff_vs_quantized_eager=q["relative"],
        status="passed" if q["relative"] <= quant_tolerance and q["top1"] >= min_top1 else "failed",
        criterion=f"vs the eager quantized model: max|diff| / max(1, max|eager|) <= {quant_tolerance} and "
        f"top-1 agreement >= {min_top1} (top1_agreement: vs the eager float model, reported)",
    )
    return result


def verify_module(program_path, reference, inputs, quantized_reference=None) -> dict[str, Any]:
    return judge_outputs(run_program(program_path, list(inputs)), reference, inputs, quantized_reference)


def _output_diff(outs, module, inputs) -> tuple[float, float]:
    """(max abs difference, that relative to max(1, max|eager|)) of ``outs`` against ``module``."""
    with torch.no_grad():
        refs = module(*inputs)
    refs = refs if isinstance(refs, (tuple, list)) else (refs,)
    max_diff = max((o - r).abs().max().item() for o, r in zip(outs, refs))
    scale = max(r.abs().max().item() for r in refs)
    return max_diff, max_diff / max(1.0, scale)


def judge_outputs(outs, reference, inputs, quantized_reference=None) -> dict[str, Any]:
    """Outputs of an exported module against the eager module on the same inputs.

    A quantized program is judged against the same quantization run eagerly (as LLMs are);
    its difference from the float model is the quantization's own cost, reported.
    """
    max_diff, relative = _output_diff(outs, reference, inputs)
    result: dict[str, Any] = {"max_abs_diff": max_diff, "relative_diff": relative}
    if quantized_reference is None:
        return result | {"status": "passed" if relative <= FLOAT_TOLERANCE else "failed",
                         "criterion": f"max|out - eager| / max(1, max|eager|) <= {FLOAT_TOLERANCE}"}
    q_diff, q_relative = _output_diff(outs, quantized_reference, inputs)
    return result | {
        "max_abs_diff_vs_quantized_eager": q_diff,
        "relative_diff_vs_quantized_eager": q_relative,
        "status": "passed" if q_relative <= QUANT_TOLERANCE else "failed",
        "criterion": f"vs the eager quantized model: max|out - eager| / max(1, max|eager|) <= {QUANT_TOLERANCE} "
        "(relative_diff: vs the eager float model, reported)",
    }
