"""The structural check of a converted package: Core ML cannot predict on Linux, so the
package is loaded back without compiling (``skip_model_load``) and its interface (names,
dtypes, shapes of inputs, outputs and states) and opset are compared with what the
exporter intended. A failure stops the export: nothing broken is cached.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from slmdeploy.errors import ExportError
from slmdeploy.export.coreml.recipe import SPEC_VERSION, deployment_target, weight_op
from slmdeploy.export.manifest import TensorSpec
from slmdeploy.export.target import Target

PACKAGE = "model"  # the one package of a stateful LLM or a module; a stateless LLM has one per method
# Core ML array data types (ArrayFeatureType.ArrayDataType names) -> manifest dtype names
DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32", "INT8": "int8"}


class SpecCheckError(ExportError):
    """A converted package whose interface or opset is not what the exporter intended."""


def _ops(spec) -> dict[str, int]:
    counts: dict[str, int] = {}
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                counts[op.type] = counts.get(op.type, 0) + 1
    return counts


def _array(array_type) -> tuple[str, list]:
    """(dtype, shape) of a Core ML array type; a flexible dimension is its ``[lower, upper]`` range."""
    import coremltools as ct

    name = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array_type.dataType)
    ranges = array_type.shapeRange.sizeRanges
    shape = [r.lowerBound if r.lowerBound == r.upperBound else [r.lowerBound, r.upperBound] for r in ranges] \
        if ranges else [int(d) for d in array_type.shape]
    return DTYPES.get(name, name.lower()), shape


def _wanted(spec: TensorSpec, dims: dict[str, list[int]]) -> tuple[str, list]:
    return spec.dtype, [dims.get(d, d) if isinstance(d, str) else d for d in spec.shape]


def _interface_problems(kind: str, got: list[tuple[str, str, list]], want: list[TensorSpec],
                        dims: dict[str, list[int]]) -> list[str]:
    """Names, dtypes and shapes of one kind of feature against what the exporter intended."""
    names = [g[0] for g in got]
    if names != [w.name for w in want]:
        return [f"{kind} are {names}, expected {[w.name for w in want]}"]
    problems = []
    for (name, dtype, shape), spec in zip(got, want):
        w_dtype, w_shape = _wanted(spec, dims)
        if (dtype, shape) != (w_dtype, w_shape):
            problems.append(f"{kind[:-1]} {name} is {dtype}{shape}, expected {w_dtype}{w_shape}")
    return problems


def _features(desc) -> dict[str, list[tuple[str, str, list]]]:
    return {
        "inputs": [(f.name, *_array(f.type.multiArrayType)) for f in desc.input],
        "outputs": [(f.name, *_array(f.type.multiArrayType)) for f in desc.output],
        "states": [(f.name, *_array(f.type.stateType.arrayType)) for f in desc.state],
    }


def packages(path: Path) -> list[str]:
    """The package names in an artifact's zip (``model``; or ``prefill`` and ``decode``)."""
    with zipfile.ZipFile(path) as zf:
        tops = {Path(n).parts[0] for n in zf.namelist()}
    return sorted(t.removesuffix(".mlpackage") for t in tops if t.endswith(".mlpackage"))


def _load_spec(path: Path, package: str = PACKAGE):
    import tempfile

    import coremltools as ct

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(tmp, members=[n for n in zf.namelist() if Path(n).parts[0] == f"{package}.mlpackage"])
        package_dir = Path(tmp) / f"{package}.mlpackage"
        if not package_dir.is_dir():
            raise SpecCheckError(f"{path.name} holds no {package}.mlpackage (it has {packages(path)}); "
                                 "re-export it with this version of slmdeploy.")
        return ct.models.MLModel(str(package_dir), skip_model_load=True).get_spec()


def validate_package(path: Path, target: Target, expect: dict[str, Any], package: str = PACKAGE) -> dict[str, Any]:
    """Load the package back without compiling it and check its interface (names, dtypes,
    shapes of inputs, outputs and states) and opset against what the exporter intended.

    Returns ``{"status": "passed"|"failed", "checks": [...], "problems": [...]}``; this is a
    structural check, not a prediction (Core ML cannot run on Linux).
    """
    spec = _load_spec(path, package)
    dims = expect.get("dims", {})
    problems: list[str] = []
    checks: list[str] = []
    for kind, got in _features(spec.description).items():
        checks.append(f"{kind} " + ", ".join(f"{n}: {d}{s}" for n, d, s in got))
        problems += _interface_problems(kind, got, expect[kind], dims)
    target_os = deployment_target(target)
    if spec.specificationVersion < SPEC_VERSION.get(target_os, 0):
        problems.append(f"spec version {spec.specificationVersion} is older than {target_os} needs")
    checks.append(f"spec version {spec.specificationVersion} (ML program, {target_os})")
    if not spec.WhichOneof("Type") == "mlProgram":
        problems.append(f"model type is {spec.WhichOneof('Type')}, expected mlProgram")
    ops = _ops(spec)
    op = weight_op(target)
    if op:
        checks.append(f"{ops.get(op, 0)} {op} weight ops")
        if not ops.get(op):
            problems.append(f"no {op} ops: the weights are not quantized")
    writes = ops.get("write_state", 0)
    if expect["states"] or writes:
        checks.append(f"{writes} write_state ops")
        if writes != len(expect["states"]):
            problems.append(f"{writes} write_state ops for {len(expect['states'])} states")
    return {"status": "failed" if problems else "passed", "checks": checks, "problems": problems,
            "ops": dict(sorted(ops.items()))}


def validate_packages(path: Path, target: Target, expects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``validate_package`` for each package of a stateless LLM (``{package: expect}``): every
    package is checked, and the zip must hold those packages and no others."""
    per = {name: validate_package(path, target, expect, package=name) for name, expect in expects.items()}
    problems = [f"{name}: {p}" for name, r in per.items() for p in r["problems"]]
    if packages(path) != sorted(expects):
        problems.insert(0, f"the zip holds packages {packages(path)}, expected {sorted(expects)}")
    ops: dict[str, int] = {}
    for r in per.values():
        for op, n in r["ops"].items():
            ops[op] = ops.get(op, 0) + n
    return {"status": "failed" if problems else "passed",
            "checks": [f"{name}: {c}" for name, r in per.items() for c in r["checks"]],
            "problems": problems, "ops": dict(sorted(ops.items())), "packages": per}


def check_package(path: Path, target: Target, expect: dict[str, Any], package: str = PACKAGE) -> dict[str, Any]:
    """``validate_package``, and a failure stops the export (nothing broken is cached)."""
    return _raise_failed(validate_package(path, target, expect, package), target)


def check_packages(path: Path, target: Target, expects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return _raise_failed(validate_packages(path, target, expects), target)


def _raise_failed(result: dict[str, Any], target: Target) -> dict[str, Any]:
    if result["status"] != "passed":
        raise SpecCheckError(
            f"Core ML spec check of {target.name} failed: {'; '.join(result['problems'])}. The package is not what "
            "slmdeploy meant to build and was not kept; try another target or coremltools version, and report it."
        )
    return result
