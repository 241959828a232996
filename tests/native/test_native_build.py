"""Building and locating the native harness: slmdeploy.harness.native and `slmdeploy harness`."""

from __future__ import annotations

import json
import subprocess

import click
import pytest
from click.testing import CliRunner

from slmdeploy.cli.common import Group
from slmdeploy.cli.harness_cmd import harness_cmd
from slmdeploy.errors import HarnessError, SlmdeployError
from slmdeploy.harness import native


@pytest.fixture()
def cli():
    @click.group(cls=Group)
    def root() -> None:
        pass

    root.add_command(harness_cmd)
    return lambda *args: CliRunner().invoke(root, list(args))


def test_build_links_the_wheels_runtimes(harness_binary):
    assert harness_binary == native.binary_for_abi(native.host_abi())
    info = native.build_info(harness_binary)
    from importlib import metadata

    assert info["abi"] == native.host_abi() and info["android"] is False
    assert info["executorch_version"].startswith(metadata.version("executorch"))
    assert info["litert_version"] == metadata.version("ai-edge-litert")
    names = [p.rsplit("/", 1)[-1] for p in info["libraries"]]
    assert names == ["libexecutorch.so", "libexecutorch_kernels_optimized.so", "libexecutorch_kernels_quantized.so",
                     "libexecutorch_backend_xnnpack.so", "libexecutorch_threadpool.so", "libexecutorch_etdump.so",
                     "libLiteRt.so", "libllama.so.0", "libggml.so.0", "libggml-base.so.0", "libggml-cpu.so.0"]
    assert info["llamacpp_version"] == "0.3.36"
    # every library is really a dependency of the binary (registration libraries kept)
    needed = subprocess.run(["readelf", "-d", str(harness_binary)], capture_output=True, text=True).stdout
    assert all(f"[{name}]" in needed for name in names)
    bundle = native.bundle_for_abi("x86_64" if native.host_abi() == "x86_64" else native.host_abi())
    assert bundle[0] == harness_binary and [p.name for p in bundle[1:]] == names


def test_bare_loop_is_built_beside_the_harness(harness_binary, tiny_fp32):
    bare = harness_binary.parent / "bare_loop"
    m = tiny_fp32.manifest.llm
    proc = subprocess.run([str(bare), "--model", str(tiny_fp32.model_file), "--prompt-tokens", "8", "--gen-tokens",
                           "4", "--vocab-size", str(m.vocab_size), "--runs", "2"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["prefill_ns"]) == 2 and min(result["decode_step_mean_ns"]) > 0


def test_missing_builds_and_unknown_abis_say_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_HARNESS_DIR", str(tmp_path))
    assert native.preset_build_dir("host-release") == tmp_path / "host-release"
    with pytest.raises(native.HarnessNotBuiltError, match="build it with: slmdeploy harness build$"):
        native.binary_for_abi(native.host_abi())
    with pytest.raises(native.HarnessNotBuiltError, match="slmdeploy harness build --android --ndk PATH"):
        native.binary_for_abi("arm64-v8a")
    # a Linux board of another machine: its glibc build is made on the board and copied here
    other = "aarch64" if native.host_abi() != "aarch64" else "riscv64"
    with pytest.raises(native.HarnessNotBuiltError, match=f"on the board itself.*{tmp_path}/linux-{other}-release/"):
        native.binary_for_abi(other)
    board_build = tmp_path / f"linux-{other}-release"
    board_build.mkdir()
    (board_build / native.BINARY_NAME).write_bytes(b"\x7fELF")
    assert native.binary_for_abi(other) == board_build / native.BINARY_NAME
    with pytest.raises(native.HarnessNotBuiltError, match="did not report its ABI.*--harness python"):
        native.binary_for_abi("")
    assert issubclass(native.HarnessNotBuiltError, HarnessError)


def test_android_build_without_an_ndk_names_what_to_install(tmp_path, monkeypatch):
    for var in ("ANDROID_NDK", "ANDROID_NDK_HOME", "ANDROID_NDK_ROOT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(native.ToolchainMissingError, match="Android NDK not found: no NDK given.*--ndk PATH"):
        native.build(android=True, build_dir=tmp_path, progress=False)
    with pytest.raises(native.ToolchainMissingError, match="is not an NDK"):
        native.build(android=True, ndk=tmp_path, build_dir=tmp_path, progress=False)
    fake_ndk = tmp_path / "ndk"
    (fake_ndk / "build/cmake").mkdir(parents=True)
    (fake_ndk / "build/cmake/android.toolchain.cmake").write_text("")
    monkeypatch.delenv("EXECUTORCH_ANDROID_ROOT", raising=False)
    with pytest.raises(native.ToolchainMissingError, match="EXECUTORCH_ANDROID_ROOT"):
        native.build(android=True, ndk=fake_ndk, build_dir=tmp_path / "b", progress=False)


def test_missing_cmake_or_compiler_is_a_toolchain_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(native.ToolchainMissingError, match="cmake not found"):
        native.build(build_dir=tmp_path, progress=False)
    (tmp_path / "cmake").write_text("#!/bin/sh\n")
    (tmp_path / "cmake").chmod(0o755)
    (tmp_path / "make").write_text("#!/bin/sh\n")
    (tmp_path / "make").chmod(0o755)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(native.ToolchainMissingError, match="apt-get install g\\+\\+"):
        native.build(build_dir=tmp_path, progress=False)


def test_presets_describe_both_builds():
    presets = json.loads((native.SOURCE_DIR / "CMakePresets.json").read_text())
    by_name = {p["name"]: p for p in presets["configurePresets"]}
    assert set(by_name) == {native.HOST_PRESET, native.ANDROID_PRESET}
    android = by_name[native.ANDROID_PRESET]
    assert android["toolchainFile"] == "$env{ANDROID_NDK}/build/cmake/android.toolchain.cmake"
    assert android["cacheVariables"]["ANDROID_ABI"] == "arm64-v8a"
    assert android["cacheVariables"]["ANDROID_PLATFORM"] == "android-28"
    assert {"EXECUTORCH_ANDROID_ROOT", "LITERT_ANDROID_LIB"} <= set(android["cacheVariables"])
    for name, preset in by_name.items():
        assert preset["binaryDir"] == "${sourceDir}/build/" + name


def test_cli_path_info_and_help(cli, harness_binary):
    result = cli("harness", "path", "--abi", native.host_abi())
    assert result.exit_code == 0 and result.output.strip() == str(harness_binary)
    result = cli("harness", "path", "--abi", native.host_abi(), "--json")
    data = json.loads(result.output)
    assert data["binary"] == str(harness_binary) and data["bundle"][0] == str(harness_binary)
    result = cli("harness", "info", "--json")
    rows = {r["preset"]: r for r in json.loads(result.output)}
    assert rows["host-release"]["built"] and rows["host-release"]["abi"] == native.host_abi()
    for args in (["harness"], ["harness", "build"], ["harness", "path"], ["harness", "info"]):
        helped = cli(*args, "--help")
        assert helped.exit_code == 0 and "Example" in helped.output


def test_cli_errors_are_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_HARNESS_DIR", str(tmp_path))
    result = cli("harness", "path", "--abi", "arm64-v8a")
    assert result.exit_code == native.HarnessNotBuiltError.exit_code == 2
    assert "slmdeploy harness build --android" in result.output and "Traceback" not in result.output
    result = cli("harness", "build", "--ndk", str(tmp_path))
    assert result.exit_code == 2 and "--ndk goes with --android" in result.output
    assert issubclass(native.ToolchainMissingError, SlmdeployError)
