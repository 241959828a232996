"""The native C++ harness (``android_harness/``): build it, find it, bundle it for a device.

Two CMake presets build the same sources:

- ``host-release``: this host, linked against the C++ runtime the executorch wheel ships
  and ``libLiteRt.so`` from the ai-edge-litert wheel (both found through this Python);
- ``android-arm64-release``: Android arm64-v8a with the NDK, linked against ExecuTorch and
  LiteRT built for Android (``EXECUTORCH_ANDROID_ROOT``, ``LITERT_ANDROID_LIB``).

Builds go to ``android_harness/build/<preset>/`` (the binary is ``slmdeploy_harness``), or
under ``$SLMDEPLOY_HARNESS_DIR/<preset>/`` when that is set. Each build directory also holds
``slmdeploy_harness.json``: the ABI, the runtime versions and the shared libraries the
binary needs beside it on a device.

    from slmdeploy.harness import native
    native.build()                      # host build, returns the binary's path
    native.binary_for_abi("x86_64")     # -> .../build/host-release/slmdeploy_harness
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from slmdeploy.errors import HarnessError

SOURCE_DIR = Path(__file__).resolve().parents[2] / "android_harness"
BINARY_NAME = "slmdeploy_harness"
INFO_NAME = "slmdeploy_harness.json"
HOST_PRESET = "host-release"
ANDROID_PRESET = "android-arm64-release"
ANDROID_ABI = "arm64-v8a"
_NDK_ENV = ("ANDROID_NDK", "ANDROID_NDK_HOME", "ANDROID_NDK_ROOT")
_MACHINE_ABI = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class HarnessBuildError(HarnessError):
    """The native harness could not be configured or compiled."""

    exit_code = 2


class ToolchainMissingError(HarnessBuildError):
    """CMake, a C++ compiler or the Android NDK is not installed (the message says how to get it)."""


class HarnessNotBuiltError(HarnessBuildError):
    """No native harness build exists for a device's ABI (the message gives the command)."""


def machine_abi(machine: str) -> str:
    """A machine name in the names devices report (``amd64`` -> ``x86_64``, ``arm64`` -> ``aarch64``)."""
    return _MACHINE_ABI.get(machine.lower(), machine.lower())


def host_abi() -> str:
    """This host's ABI in the names devices report (``x86_64``, ``aarch64``)."""
    return machine_abi(platform.machine())


def build_root() -> Path:
    """Where builds go: ``$SLMDEPLOY_HARNESS_DIR`` or ``android_harness/build``."""
    root = os.environ.get("SLMDEPLOY_HARNESS_DIR")
    return Path(root).expanduser() if root else SOURCE_DIR / "build"


def preset_build_dir(preset: str) -> Path:
    """The build directory of ``preset`` (``host-release`` or ``android-arm64-release``)."""
    return build_root() / preset


def linux_preset(abi: str) -> str:
    """Where a glibc build for a Linux board of another architecture goes (made on the board)."""
    return f"linux-{machine_abi(abi)}-release"


def preset_for_abi(abi: str) -> str:
    """The preset whose binary runs on ``abi``.

    ``arm64-v8a`` is Android (bionic); this host's machine is the host build; any other
    machine name (``aarch64`` on an x86_64 host) is a Linux board, whose glibc build cannot be
    made here and lives in ``build_root()/linux-<machine>-release``.
    """
    if abi == ANDROID_ABI:
        return ANDROID_PRESET
    if not abi:
        raise HarnessNotBuiltError("the device did not report its ABI, so no native harness build can be chosen; "
                                   "use --harness python where the device has Python.")
    if machine_abi(abi) == host_abi():
        return HOST_PRESET
    return linux_preset(abi)


def _build_command(preset: str) -> str:
    if preset == ANDROID_PRESET:
        return "slmdeploy harness build --android --ndk PATH"
    if preset == HOST_PRESET:
        return "slmdeploy harness build"
    return (f"`slmdeploy harness build` on the board itself (or a machine of its architecture), then copy "
            f"its android_harness/build/{HOST_PRESET}/ here as {preset_build_dir(preset)}/")


def binary_for_abi(abi: str) -> Path:
    """The harness binary for a device's ABI (``x86_64`` -> host build, ``arm64-v8a`` -> Android build)."""
    preset = preset_for_abi(abi)
    binary = preset_build_dir(preset) / BINARY_NAME
    if not binary.is_file():
        raise HarnessNotBuiltError(
            f"the native harness for {abi} is not built ({binary} does not exist); build it with: "
            f"{_build_command(preset)}"
        )
    return binary


def build_info(binary_or_dir: Path) -> dict[str, Any]:
    """The facts CMake recorded for a build (ABI, versions, shared libraries); {} if none."""
    path = Path(binary_or_dir)
    info_path = (path if path.is_dir() else path.parent) / INFO_NAME
    try:
        return json.loads(info_path.read_text())
    except (OSError, ValueError):
        return {}


def bundle_for_abi(abi: str) -> list[Path]:
    """What a device of ``abi`` needs to run the harness: the binary, then its shared libraries."""
    binary = binary_for_abi(abi)
    libs = [Path(p) for p in build_info(binary).get("libraries", [])]
    missing = [str(p) for p in libs if not p.is_file()]
    if missing:
        raise HarnessNotBuiltError(
            f"the native harness build {binary.parent} links libraries that are gone ({', '.join(missing)}); "
            f"rebuild it with: {_build_command(preset_for_abi(abi))}"
        )
    return [binary, *libs]


def find_ndk(ndk: Path | str | None = None) -> Path:
    """The Android NDK: ``ndk``, else ``$ANDROID_NDK`` / ``$ANDROID_NDK_HOME`` / ``$ANDROID_NDK_ROOT``."""
    candidates = [Path(ndk).expanduser()] if ndk else [Path(os.environ[v]) for v in _NDK_ENV if os.environ.get(v)]
    for candidate in candidates:
        if (candidate / "build" / "cmake" / "android.toolchain.cmake").is_file():
            return candidate.resolve()
    where = f"{candidates[0]} is not an NDK (no build/cmake/android.toolchain.cmake)" if candidates else "no NDK given"
    raise ToolchainMissingError(
        f"Android NDK not found: {where}. Install NDK r26 or newer (Android Studio's SDK Manager, or "
        f"`sdkmanager 'ndk;26.3.11579264'`, or unzip android-ndk-r26d-linux.zip from "
        f"developer.android.com/ndk/downloads) and pass --ndk PATH or set ANDROID_NDK."
    )


def _check_toolchain(android: bool) -> None:
    if shutil.which("cmake") is None:
        raise ToolchainMissingError(
            "cmake not found: install CMake 3.21 or newer (`apt-get install cmake` or `pip install cmake`)."
        )
    if shutil.which("make") is None and shutil.which("ninja") is None:
        raise ToolchainMissingError("neither make nor ninja found: `apt-get install make`.")
    if android:
        return  # the NDK brings the compiler
    compiler = os.environ.get("CXX")
    if compiler:
        if shutil.which(compiler.split()[0]) is None:
            raise ToolchainMissingError(f"the C++ compiler CXX={compiler} is not on PATH; install it or unset CXX.")
    elif not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise ToolchainMissingError(
            "no C++ compiler found (c++, g++ or clang++): install one with `apt-get install g++` "
            "(or build-essential); C++17 is needed."
        )


def _python_package_dir(name: str) -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _host_cache_args() -> list[str]:
    """The wheels of *this* Python, so the harness links what the Python harness runs."""
    args = [f"-DPython3_EXECUTABLE={sys.executable}"]
    et = _python_package_dir("executorch")
    if et is None or not (et / "share" / "cmake" / "executorch-config.cmake").is_file():
        raise ToolchainMissingError(
            "the executorch wheel with its C++ runtime is not installed in this Python: "
            "`pip install executorch==1.5.1` (it ships lib/ and share/cmake/ used by the host build)."
        )
    args.append(f"-DEXECUTORCH_ROOT={et}")
    litert = _python_package_dir("ai_edge_litert")
    if litert is not None and (litert / "libLiteRt.so").is_file():
        from importlib import metadata

        args.append(f"-DLITERT_LIB={litert / 'libLiteRt.so'}")
        try:
            args.append(f"-DLITERT_VERSION={metadata.version('ai-edge-litert')}")
        except metadata.PackageNotFoundError:
            pass
    return args


def _llamacpp_cache_args(android: bool, progress: bool) -> list[str]:
    """The pinned llama.cpp: its source (fetched once) and, for this host, the libllama built from it."""
    from slmdeploy import llamacpp

    args = [f"-DLLAMACPP_VERSION={llamacpp.VERSION}"]
    if android:
        from slmdeploy.llamacpp import source

        return [*args, f"-DLLAMACPP_SOURCE_DIR={source.fetch(progress=progress)}", "-DLLAMACPP_LIB_DIR="]
    tools = llamacpp.toolchain(progress=progress)
    return [*args, f"-DLLAMACPP_SOURCE_DIR={tools.source}", f"-DLLAMACPP_LIB_DIR={tools.lib_dir}"]


def _android_cache_args(ndk: Path) -> list[str]:
    root = os.environ.get("EXECUTORCH_ANDROID_ROOT")
    if not root or not Path(root).is_dir():
        raise ToolchainMissingError(
            "EXECUTORCH_ANDROID_ROOT is not set to an ExecuTorch install built for arm64-v8a: build ExecuTorch "
            "with the NDK as docs/native-harness.md ('Android') shows and export EXECUTORCH_ANDROID_ROOT=<prefix>; "
            "set LITERT_ANDROID_LIB=<arm64-v8a libLiteRt.so> too for .tflite models."
        )
    return [f"-DCMAKE_TOOLCHAIN_FILE={ndk / 'build' / 'cmake' / 'android.toolchain.cmake'}"]


def build(
    android: bool = False,
    ndk: Path | None = None,
    build_dir: Path | None = None,
    progress: bool = True,
    jobs: int | None = None,
    llamacpp: bool = True,
) -> Path:
    """Configure and compile the harness; returns the path of the ``slmdeploy_harness`` binary.

    ``android`` builds the ``android-arm64-release`` preset with the NDK (``ndk`` or
    ``$ANDROID_NDK``), else the host preset. ``llamacpp`` adds the llama.cpp backend: on this
    host it links the libllama of ``slmdeploy.llamacpp.toolchain()`` (built first when
    missing); for Android the pinned source is compiled into the harness. ``build_dir`` overrides the default
    ``build_root()/<preset>``. Incremental: an up-to-date build only re-runs CMake's checks.
    Raises ``ToolchainMissingError`` (what to install) or ``HarnessBuildError`` (with the
    end of the build log, which is kept in ``<build_dir>/build.log``).
    """
    from slmdeploy._cmake import configure_and_build
    from slmdeploy.progress import stderr

    if not (SOURCE_DIR / "CMakeLists.txt").is_file():
        raise HarnessBuildError(f"the harness sources are not here ({SOURCE_DIR}); build from a slmdeploy checkout.")
    _check_toolchain(android)
    preset = ANDROID_PRESET if android else HOST_PRESET
    env = dict(os.environ)
    if android:
        ndk_path = find_ndk(ndk)
        env["ANDROID_NDK"] = str(ndk_path)
        cache = _android_cache_args(ndk_path)
    else:
        cache = _host_cache_args()
    cache += _llamacpp_cache_args(android, progress) if llamacpp else ["-DLLAMACPP_SOURCE_DIR=", "-DLLAMACPP_LIB_DIR="]
    out = Path(build_dir) if build_dir else preset_build_dir(preset)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "build.log"
    jobs = jobs or max(2, os.cpu_count() or 2)
    configure = ["cmake", "-S", str(SOURCE_DIR), "--preset", preset, "-B", str(out), *cache]
    compile_ = ["cmake", "--build", str(out), "--parallel", str(jobs)]
    start = time.perf_counter()
    configure_and_build(configure, compile_, log_path=log_path, env=env, cwd=SOURCE_DIR,
                        title=f"native harness ({preset})", error=HarnessBuildError, progress=progress)
    binary = out / BINARY_NAME
    if not binary.is_file():
        raise HarnessBuildError(f"the build finished but {binary} is missing (log: {log_path})")
    if progress:
        stderr.print(f"  [green]✓[/] native harness {preset} [dim]({time.perf_counter() - start:.1f} s)[/]: {binary}")
    return binary
