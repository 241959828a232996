"""A Hugging Face checkpoint directory -> GGUF through llama.cpp's own ``convert_hf_to_gguf.py``.

The converter runs as llama.cpp ships it (a subprocess of this Python, with the gguf-py it
vendors), so what slmdeploy exports is what ``python convert_hf_to_gguf.py`` would make.
Its failures are long tracebacks; the last line (the exception) is what a user can act on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from slmdeploy.errors import ExportError
from slmdeploy.llamacpp.build import Toolchain

OUTTYPES = ("f32", "f16")


def _reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line.split(":", 1)[0] or line.startswith("raise ")]
    return (errors or lines or ["no output"])[-1]


def convert(tools: Toolchain, checkpoint: Path, out: Path, outtype: str, name: str | None = None) -> Path:
    """Write ``out`` (a GGUF of ``outtype``: f32 or f16) from the checkpoint in ``checkpoint`` (``name``: for errors)."""
    if outtype not in OUTTYPES:
        raise ValueError(f"outtype {outtype!r} is not one of {OUTTYPES}")
    cmd = [sys.executable, str(tools.convert_script), str(checkpoint), "--outfile", str(out), "--outtype", outtype]
    done = subprocess.run(cmd, capture_output=True, text=True, env=tools.env())
    if done.returncode != 0 or not out.is_file():
        raise ExportError(
            f"llama.cpp's convert_hf_to_gguf.py ({tools.version}) could not convert {name or checkpoint.name}: "
            f"{_reason(done.stderr)}"
        )
    return out
