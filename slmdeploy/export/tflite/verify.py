"""TFLite artifacts on this host: parity with eager PyTorch, and what XNNPACK takes.

The LiteRT interpreter (``ai_edge_litert``) runs the artifact on this CPU with its default
XNNPACK delegate. The LLM parity check is the ExecuTorch one (``executorch.verify``) with
the prefill/decode signatures behind a one-method adapter that carries the KV cache.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slmdeploy.export.executorch import verify as et_verify

GPU_OK = "Your model looks compatible with GPU delegate"


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path))


class SignatureLLM:
    """``execute([tokens, input_pos]) -> [logits]`` over the prefill/decode signatures.

    The first call must have the prefill length; later calls one token each. The cache
    outputs of each call are the cache inputs of the next, as a runtime would do it.
    """

    def __init__(self, path: Path, prefill: str, decode: str, cache_names: list[str]) -> None:
        interp = _interpreter(path)
        self.prefill, self.decode = interp.get_signature_runner(prefill), interp.get_signature_runner(decode)
        details = self.prefill.get_input_details()
        self.cache = {n: np.zeros(details[n]["shape"], details[n]["dtype"]) for n in cache_names}
        self.prefill_len = int(details["tokens"]["shape"][1])

    def execute(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        tokens, pos = (t.numpy().astype(np.int32) for t in inputs)
        runner = self.decode if tokens.shape[1] == 1 and self.prefill_len != 1 else self.prefill
        out = runner(tokens=tokens, input_pos=pos, **self.cache)
        self.cache = {n: out[n] for n in self.cache}
        return [torch.from_numpy(np.array(out["logits"]))]


def verify_llm(path: Path, llm, reference, quantized_reference=None, decode_steps: int = 16) -> dict[str, Any]:
    method = SignatureLLM(path, llm.prefill_method, llm.decode_method, llm.cache_tensors)
    result = et_verify.judge_llm(method, reference, quantized_reference, method.prefill_len, decode_steps)
    result["runtime"] = "ai_edge_litert Interpreter on this CPU (XNNPACK delegate)"
    return result


def _order(item) -> int:
    """``args_10`` after ``args_9``: litert-torch numbers positional inputs and outputs."""
    name = item[0] if isinstance(item, tuple) else item
    return int(name.rsplit("_", 1)[-1])


def verify_module(path: Path, reference, inputs, quantized: bool) -> dict[str, Any]:
    runner = _interpreter(path).get_signature_runner("serving_default")
    details = runner.get_input_details()
    out = runner(**{n: t.numpy().astype(details[n]["dtype"]) for n, t in zip(sorted(details, key=_order), inputs)})
    outs = [torch.from_numpy(np.array(out[k])) for k in sorted(out, key=_order)]
    return et_verify.judge_outputs(outs, reference, inputs, quantized)


def _delegated_nodes(ops: list[dict]) -> set[int]:
    """Original nodes inside an XNNPACK partition: walk back from each DELEGATE node's outputs
    to its inputs (the interpreter keeps the replaced nodes in its node list)."""
    producer = {t: op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    by_index = {op["index"]: op for op in ops}
    taken: set[int] = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        stop, stack = set(op["inputs"]), list(op["outputs"])
        while stack:
            tensor = stack.pop()
            node = producer.get(tensor)
            if tensor in stop or node is None or node in taken:
                continue
            taken.add(node)
            stack.extend(by_index[node]["inputs"])
    return taken


def delegation_report(path: Path, target) -> dict[str, Any]:
    """XNNPACK coverage of the first signature as the interpreter applies it here, plus the
    LiteRT analyzer's GPU-delegate compatibility verdict for the whole model."""
    interp = _interpreter(path)
    interp.allocate_tensors()
    ops = interp._get_ops_details()  # subgraph 0 (the first signature), with the DELEGATE nodes
    taken = _delegated_nodes(ops)
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    fallback = Counter(op["op_name"] for op in originals if op["index"] not in taken)
    delegates = sum(1 for op in ops if op["op_name"] == "DELEGATE")
    report: dict[str, Any] = {
        "measured_on": "this host's LiteRT interpreter, XNNPACK delegate, first signature",
        "delegated_subgraphs": delegates,
        "delegated_nodes": len(taken),
        "non_delegated_nodes": sum(fallback.values()),
        "delegated_fraction": round(len(taken) / len(originals), 4) if originals else 0.0,
        "by_delegate": {"xnnpack": {"subgraphs": delegates, "nodes": len(taken)}},
        "fallback_ops": dict(sorted(fallback.items())),
    }
    if "gpu" in target.delegates:
        from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer

        text = analyzer.ModelAnalyzer(str(path), True, True)
        warnings = sorted({line.strip() for line in text.splitlines() if "GPU COMPATIBILITY WARNING" in line})
        report["gpu_compatibility"] = {"compatible": GPU_OK in text and not warnings, "warnings": warnings}
    return report


def signature_specs(path: Path, name: str) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
    """(name, dtype, shape) of a signature's inputs and outputs, as the interpreter sees them."""
    runner = _interpreter(path).get_signature_runner(name)

    def rows(details):
        return [(n, np.dtype(d["dtype"]).name, [int(x) for x in d["shape"]]) for n, d in sorted(details.items(), key=_order)]

    return rows(runner.get_input_details()), rows(runner.get_output_details())
