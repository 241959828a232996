"""Given inputs for the generic workload: checked against the artifact, written raw.

A harness on a phone cannot read ``.npy``; protocol v1's ``--input`` takes one file per
method input holding the tensor's raw little-endian bytes. This step turns what the user
has (``.npy`` arrays or raw ``.bin`` files) into exactly that, in the run directory (so the
run records what it was fed), and rejects a wrong count, dtype or shape before any device
work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from slmdeploy.errors import WorkloadError
from slmdeploy.export.manifest import Manifest, MethodSpec, TensorSpec


def _file_dtype(spec: TensorSpec, what: str):
    """The numpy dtype an input file holds for ``spec``: its element type, little-endian."""
    import numpy as np

    try:
        dtype = np.dtype(spec.dtype).newbyteorder("<")
    except TypeError:
        raise WorkloadError(f"{what} has dtype {spec.dtype}, which an input file cannot hold.") from None
    return dtype


def _shape_matches(shape: tuple[int, ...], spec: TensorSpec) -> bool:
    return len(shape) == len(spec.shape) and all(isinstance(d, str) or d == s for d, s in zip(spec.shape, shape))


def _raw_bytes(path: Path, spec: TensorSpec, what: str) -> bytes:
    import numpy as np

    dtype = _file_dtype(spec, what)
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.dtype.newbyteorder("<") != dtype:  # either byte order: written little-endian below
            raise WorkloadError(f"{path} ({what}) is {array.dtype}, the artifact takes {spec.dtype}; convert it "
                                f"with array.astype('{spec.dtype}').")
        if not _shape_matches(tuple(array.shape), spec):
            raise WorkloadError(f"{path} ({what}) has shape {list(array.shape)}, the artifact takes {spec.shape}.")
        return np.ascontiguousarray(array, dtype=dtype).tobytes()
    data = path.read_bytes()
    if all(isinstance(d, int) for d in spec.shape):
        want = int(np.prod(spec.shape, dtype=np.int64)) * dtype.itemsize
        if len(data) != want:
            raise WorkloadError(f"{path} ({what}) holds {len(data)} bytes; {spec.dtype}{spec.shape} raw takes {want} "
                                f"(or pass a .npy file).")
    return data


def load_inputs(files: Sequence[str | Path], manifest: Manifest) -> list[bytes]:
    """The raw bytes of each given file, checked against the artifact's first method (its inputs, in order)."""
    if not files:
        return []
    if manifest.llm is not None:
        raise WorkloadError("--input feeds generic (non-LLM) artifacts; an LLM's prompt comes from --prompt and --seed.")
    method: MethodSpec = manifest.methods[0]
    if len(files) != len(method.inputs):
        names = ", ".join(f"{s.name} {s.dtype}{s.shape}" for s in method.inputs)
        raise WorkloadError(f"{len(files)} --input files given; method '{method.name}' takes {len(method.inputs)}: {names}.")
    raw = []
    for i, (given, spec) in enumerate(zip(files, method.inputs)):
        path = Path(given)
        if not path.is_file():
            raise WorkloadError(f"input file {path} does not exist.")
        raw.append(_raw_bytes(path, spec, f"input {i} '{spec.name}'"))
    return raw


def write_inputs(raw: Sequence[bytes], out_dir: Path) -> list[Path]:
    """``input<i>.bin`` files in ``out_dir`` (the run directory keeps what the run was fed)."""
    if not raw:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, data in enumerate(raw):
        path = out_dir / f"input{i}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths
