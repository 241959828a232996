"""The host build of the pinned llama.cpp: ``libllama`` + ggml, and ``llama-bench`` on demand.

Only ``libllama`` and ggml are compiled by default: the exporter quantizes through
``llama_model_quantize`` (the library call ``tools/quantize`` wraps), the harnesses and the
parity check link or load libllama. ``llama-bench`` needs llama.cpp's ``common`` library
(chat templates, JSON, parsers: two thirds of the compile time), so it is built only when
asked for (``toolchain(bench=True)``: the measurement-truth benchmark, ``pytest -m slow``).
The build directory is keyed by what decides the binaries (the
pinned version, the CMake options, the compiler, this CPU's feature flags, since ggml is
built with ``-march=native``), lives under the toolchain directory and is reused by every
checkout and CI run on the machine; ggml picks up ``ccache`` by itself when it is on PATH.
A ``toolchain.json`` written last marks a finished build; a file lock keeps two processes
from building the same directory at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from slmdeploy.errors import ToolchainError
from slmdeploy.llamacpp import source

TARGETS = ("llama",)
BENCH_TARGET = "llama-bench"
# Shared libraries a program linked against libllama needs beside it (a CPU-only build).
LIBRARIES = ("libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu.so")
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=ON",  # one libllama for the harness, the bindings and the tools
    "-DGGML_NATIVE=ON",  # this host's CPU features, as llama.cpp's own default build does
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",  # for tools/llama-bench (compiled only on demand)
    "-DLLAMA_BUILD_COMMON=ON",  # llama-bench links llama-common
    "-DLLAMA_OPENSSL=OFF",  # no downloads from the tools
)
# x86: -march=native minus AMX. Some hypervisors (the Firecracker VMs CI runs on) report AMX in
# cpuid and grant the tile-data permission, yet fault on tile instructions: ggml's AMX kernels
# (quantized matrix products) then die of SIGILL. AMX only ever helps Xeon servers, not phones.
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
INFO = "toolchain.json"


def cmake_options() -> tuple[str, ...]:
    if platform.machine().lower() in ("x86_64", "amd64"):
        return (*CMAKE_OPTIONS, f"-DCMAKE_C_FLAGS={NO_AMX}", f"-DCMAKE_CXX_FLAGS={NO_AMX}")
    return CMAKE_OPTIONS


@dataclass(frozen=True)
class Toolchain:
    """A finished host build of the pinned llama.cpp and where its parts are."""

    version: str  # the llama-cpp-python release whose vendored llama.cpp this is
    source: Path
    build_dir: Path
    lib_dir: Path  # libllama.so and the ggml libraries
    ggml_version: str
    bench: Path | None = None  # tools/llama-bench, once built

    @property
    def convert_script(self) -> Path:
        return self.source / "convert_hf_to_gguf.py"

    @property
    def gguf_py(self) -> Path:
        """The gguf-py package vendored with the converter (the converter imports this copy)."""
        return self.source / "gguf-py"

    @property
    def include_dirs(self) -> list[Path]:
        return [self.source / "include", self.source / "ggml" / "include"]

    def libraries(self) -> list[Path]:
        """The shared libraries by the names programs look them up by (their SONAME: ``libllama.so.0``)."""
        return [_soname(self.lib_dir / name) for name in LIBRARIES]

    def env(self) -> dict[str, str]:
        """Environment for a tool of this build (its libraries first on the search path)."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(self.lib_dir), env.get("LD_LIBRARY_PATH")]))
        return env


def _soname(dev_link: Path) -> Path:
    """``libllama.so`` -> ``libllama.so.0``: CMake links the development name to the SONAME link."""
    return dev_link.parent / os.readlink(dev_link) if dev_link.is_symlink() else dev_link


def _first_line(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return ""


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return platform.processor()


def build_key() -> str:
    """What decides the binaries: a different key is a different build directory."""
    compiler = os.environ.get("CXX") or "c++"
    payload = json.dumps({"version": source.VERSION, "sha256": source.SDIST_SHA256, "options": cmake_options(),
                          "targets": TARGETS, "compiler": _first_line([compiler, "--version"]),
                          "machine": platform.machine(), "cpu": _cpu_flags()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_dir() -> Path:
    return source.home() / f"build-{platform.machine()}-{build_key()}"


def _load(directory: Path) -> Toolchain | None:
    try:
        data = json.loads((directory / INFO).read_text())
        tools = Toolchain(**{k: Path(v) if k in ("source", "build_dir", "lib_dir", "bench") and v else v
                             for k, v in data.items()})
    except (OSError, ValueError, TypeError):
        return None
    needed = [tools.convert_script, *tools.libraries(), *([tools.bench] if tools.bench else [])]
    return tools if all(p.is_file() for p in needed) else None


def find(bench: bool = False) -> Toolchain | None:
    """The finished build for this host (with llama-bench if ``bench``), or None; nothing is fetched or built."""
    tools = _load(build_dir())
    return tools if tools is not None and (tools.bench or not bench) else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _check_tools() -> None:
    missing = [tool for tool in ("cmake", "make") if shutil.which(tool) is None]
    compiler = os.environ.get("CXX", "c++").split()[0]
    if shutil.which(compiler) is None and not any(shutil.which(c) for c in ("g++", "clang++")):
        missing.append("a C++ compiler (g++)")
    if missing:
        raise ToolchainError(f"building llama.cpp needs {', '.join(missing)}: `apt-get install cmake make g++` "
                             "(scripts/install-system-deps.sh does it).")


def _ggml_version(log: Path) -> str:
    try:
        for line in log.read_text(errors="replace").splitlines():
            if "ggml version:" in line:
                return line.split("ggml version:", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def toolchain(progress: bool = True, jobs: int | None = None, bench: bool = False) -> Toolchain:
    """The host build of the pinned llama.cpp (with ``llama-bench`` if ``bench``), fetched and
    compiled first when missing. Raises ``ToolchainError`` (what to install, or the build log's end).
    """
    found = find(bench)
    if found is not None:
        return found
    from slmdeploy._cmake import configure_and_build
    from slmdeploy.progress import stderr

    _check_tools()
    src = source.fetch(progress=progress)
    out = build_dir()
    targets = (*TARGETS, BENCH_TARGET) if bench else TARGETS
    with _locked(source.home() / ".build.lock"):
        if (found := find(bench)) is not None:  # built by another process while we waited
            return found
        out.mkdir(parents=True, exist_ok=True)
        log_path = out / "build.log"
        jobs = jobs or max(2, os.cpu_count() or 2)
        start = time.perf_counter()
        configure_and_build(
            ["cmake", "-S", str(src), "-B", str(out), *cmake_options()],
            ["cmake", "--build", str(out), "--parallel", str(jobs), "--target", *targets],
            log_path=log_path, env=dict(os.environ), cwd=out,
            title=f"llama.cpp {source.VERSION} ({', '.join(targets)})", error=ToolchainError, progress=progress,
        )
        tools = Toolchain(version=source.VERSION, source=src, build_dir=out, lib_dir=out / "bin",
                          ggml_version=_ggml_version(log_path), bench=out / "bin" / BENCH_TARGET if bench else None)
        missing = [str(p) for p in (*tools.libraries(), *([tools.bench] if tools.bench else [])) if not p.is_file()]
        if missing:
            raise ToolchainError(f"the llama.cpp build finished without {', '.join(missing)} (log: {log_path}).")
        info = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(tools).items()}
        (out / INFO).write_text(json.dumps(info, indent=2) + "\n")
    if progress:
        stderr.print(f"  [green]✓[/] llama.cpp {source.VERSION} [dim]({time.perf_counter() - start:.1f} s)[/]: {out}")
    return tools
