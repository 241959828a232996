"""``slmdeploy harness``: build the native C++ harness and find the build for a device."""

from __future__ import annotations

from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.group("harness")
def harness_cmd() -> None:
    """The native C++ harness (android_harness/): build it and locate builds.

    \b
    Example:
      slmdeploy harness build                      # this host, against the pip wheels
      slmdeploy harness path --abi x86_64
    """


@harness_cmd.command("build")
@click.option("--android", is_flag=True, help="Build for Android arm64-v8a with the NDK (preset android-arm64-release).")
@click.option("--ndk", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Android NDK directory (default: $ANDROID_NDK).")
@click.option("--build-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Build here instead of android_harness/build/<preset> ($SLMDEPLOY_HARNESS_DIR/<preset>).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, help="Parallel compile jobs.")
@click.option("--no-llamacpp", is_flag=True,
              help="Leave out the llama.cpp backend (no fetch of its source, no libllama build).")
@json_option
def build_cmd(android: bool, ndk: Path | None, build_dir: Path | None, jobs: int | None, no_llamacpp: bool,
              as_json: bool) -> None:
    """Configure and compile the harness with CMake; prints the binary's path.

    The llama.cpp backend needs the pinned llama.cpp source (fetched once from PyPI, the
    llama-cpp-python sdist, sha256-checked) and, for this host, its libllama, built once into
    ~/.cache/slmdeploy/toolchains ($SLMDEPLOY_TOOLCHAINS): a few minutes the first time.

    \b
    Example:
      slmdeploy harness build
      slmdeploy harness build --android --ndk ~/Android/Sdk/ndk/26.3.11579264
    """
    from slmdeploy.harness import native

    if ndk is not None and not android:
        raise click.UsageError("--ndk goes with --android")
    binary = native.build(android=android, ndk=ndk, build_dir=build_dir, progress=not as_json, jobs=jobs,
                          llamacpp=not no_llamacpp)
    if as_json:
        emit_json({"binary": str(binary), **native.build_info(binary)})
    else:
        click.echo(str(binary))


@harness_cmd.command("path")
@click.option("--abi", required=True, help="The device's ABI: this host's (x86_64), arm64-v8a (Android) or a Linux board's machine (aarch64).")
@json_option
def path_cmd(abi: str, as_json: bool) -> None:
    """Print the harness binary built for a device ABI (an error says how to build it).

    \b
    Example:
      slmdeploy harness path --abi x86_64
      slmdeploy harness path --abi arm64-v8a --json
    """
    from slmdeploy.harness import native

    binary = native.binary_for_abi(abi)
    if as_json:
        emit_json({"abi": abi, "binary": str(binary), "bundle": [str(p) for p in native.bundle_for_abi(abi)]})
    else:
        click.echo(str(binary))


@harness_cmd.command("info")
@json_option
def info_cmd(as_json: bool) -> None:
    """Show the harness builds: preset, ABI, runtime versions and the libraries linked.

    \b
    Example:
      slmdeploy harness info
      slmdeploy harness info --json
    """
    from rich.table import Table

    from slmdeploy.harness import native

    rows = []
    boards = sorted(p.name for p in native.build_root().glob("linux-*-release") if p.is_dir())
    for preset in (native.HOST_PRESET, native.ANDROID_PRESET, *boards):
        directory = native.preset_build_dir(preset)
        binary = directory / native.BINARY_NAME
        info = native.build_info(directory) if binary.is_file() else {}
        rows.append({"preset": preset, "built": binary.is_file(), "binary": str(binary), **info})
    if as_json:
        emit_json(rows)
        return
    table = Table(header_style="bold")
    for col in ("preset", "built", "abi", "executorch", "litert", "llama.cpp", "binary / libraries"):
        table.add_column(col, overflow="fold")
    for row in rows:
        libs = "\n".join(Path(p).name for p in row.get("libraries", []))
        table.add_row(row["preset"], "yes" if row["built"] else "no", row.get("abi", ""),
                      row.get("executorch_version", ""), row.get("litert_version") or "", row.get("llamacpp_version") or "",
                      row["binary"] + ("\n" + libs if libs else ""))
    stdout.print(table)
