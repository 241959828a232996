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


def verify_llm(path: Path, llm, reference, quantized_reference=None) -> dict[str, Any]:
    method = SignatureLLM(path, llm.prefill_method, llm.decode_method, llm.cache_tensors)
    prompt, steps = et_verify.check_lengths(llm.max_seq_len, method.prefill_len)
    result = et_verify.judge_llm(method, reference, quantized_reference, prompt, steps)
    result["runtime"] = "ai_edge_litert Interpreter on this CPU (XNNPACK delegate)"
    return result


def _order(item) -> int:
    """``args_10`` after ``args_9``: litert-torch numbers positional inputs and outputs."""
    name = item[0] if isinstance(item, tuple) else item
    return int(name.rsplit("_", 1)[-1])


def verify_module(path: Path, reference, inputs, quantized_reference=None) -> dict[str, Any]:
    runner = _interpreter(path).get_signature_runner("serving_default")
    details = runner.get_input_details()
    out = runner(**{n: t.numpy().astype(details[n]["dtype"]) for n, t in zip(sorted(details, key=_order), inputs)})
    outs = [torch.from_numpy(np.array(out[k])) for k in sorted(out, key=_order)]
    return et_verify.judge_outputs(outs, reference, inputs, quantized_reference)


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


def _signature_first(raw: bytes, key: str) -> bytes:
    """The model with signature ``key``'s subgraph moved to index 0, buffers inlined.

    The Python interpreter lists the nodes of subgraph 0 only; this copy lets the XNNPACK
    coverage of every signature be measured the same way. Buffers the converter appended
    after the flatbuffer (``offset``) are inlined, since re-packing moves the flatbuffer end.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    index = next(s.subgraphIndex for s in model.signatureDefs if s.signatureKey.decode() == key)
    order = [index] + [i for i in range(len(model.subgraphs)) if i != index]
    model.subgraphs = [model.subgraphs[i] for i in order]
    for sig in model.signatureDefs:
        sig.subgraphIndex = order.index(sig.subgraphIndex)
    for buffer in model.buffers:
        if buffer.offset:
            buffer.data = np.frombuffer(raw, np.uint8, count=buffer.size, offset=buffer.offset)
            buffer.offset = buffer.size = 0
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _xnnpack_coverage(path: Path) -> dict[str, Any]:
    """What the interpreter's XNNPACK delegate takes of subgraph 0 on this host."""
    interp = _interpreter(path)
    interp.allocate_tensors()
    ops = interp._get_ops_details()  # subgraph 0, with the DELEGATE nodes
    taken = _delegated_nodes(ops)
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    fallback = Counter(op["op_name"] for op in originals if op["index"] not in taken)
    return {"subgraphs": sum(1 for op in ops if op["op_name"] == "DELEGATE"), "nodes": len(taken),
            "total": len(originals), "fallback_ops": fallback}


def _coverage_by_signature(path: Path) -> dict[str, dict[str, Any]]:
    """XNNPACK coverage of each signature (prefill *and* decode), so ``--strict`` sees all.

    The signature in subgraph 0 is measured on the file itself; the others on a re-packed
    copy with their subgraph first.
    """
    import tempfile

    interp = _interpreter(path)
    index = {key: interp._interpreter.GetSubgraphIndexFromSignature(key) for key in interp.get_signature_list()}
    result = {key: _xnnpack_coverage(path) for key, i in index.items() if i == 0} or {"main": _xnnpack_coverage(path)}
    others = [key for key, i in index.items() if i != 0]
    if others:
        raw = path.read_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            for key in others:
                copy = Path(tmp) / f"{key}.tflite"
                copy.write_bytes(_signature_first(raw, key))
                result[key] = _xnnpack_coverage(copy)
    return result


def delegation_report(path: Path, target) -> dict[str, Any]:
    """XNNPACK coverage of every signature as the interpreter applies it here (summed over the
    signatures, and per signature), plus the LiteRT analyzer's GPU-delegate compatibility."""
    per = _coverage_by_signature(path)
    fallback = sum((c["fallback_ops"] for c in per.values()), Counter())
    taken, total = sum(c["nodes"] for c in per.values()), sum(c["total"] for c in per.values())
    subgraphs = sum(c["subgraphs"] for c in per.values())
    report: dict[str, Any] = {
        "measured_on": "this host's LiteRT interpreter, XNNPACK delegate, every signature",
        "delegated_subgraphs": subgraphs,
        "delegated_nodes": taken,
        "non_delegated_nodes": sum(fallback.values()),
        "delegated_fraction": round(taken / total, 4) if total else 0.0,
        "by_delegate": {"xnnpack": {"subgraphs": subgraphs, "nodes": taken}},
        "by_signature": {k: {"delegated_subgraphs": c["subgraphs"], "delegated_nodes": c["nodes"],
                             "fallback_ops": dict(sorted(c["fallback_ops"].items()))} for k, c in per.items()},
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
