"""``slmdeploy.export()``: model source + target -> verified artifact directory."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from slmdeploy.errors import ArtifactError, ExportError, OutputDirError
from slmdeploy.export import cache
from slmdeploy.export.artifact import Artifact
from slmdeploy.export.manifest import MANIFEST_NAME, FileEntry, Manifest
from slmdeploy.export.source import ModelSource, resolve, sha256_file
from slmdeploy.export.target import Target, load_target
from slmdeploy.progress import Stages

DEFAULT_TARGET = "host-xnnpack"
SKIPPED = "skipped"  # the verdict of an export made with verify=False


def default_out_dir(source: ModelSource, target: Target, max_seq_len: int) -> Path:
    suffix = "" if max_seq_len == target.max_seq_len else f"-s{max_seq_len}"
    return Path("artifacts") / f"{source.name}-{target.name}{suffix}"


def _check_out_dir(out_dir: Path) -> None:
    """Fail before any work if ``out_dir`` cannot receive the artifact."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutputDirError(f"output path {out_dir} is a file; pass a directory with --out.")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).exists():
            raise OutputDirError(
                f"output directory {out_dir} is not empty and holds no artifact; pass a new or empty directory."
            )
    parent = out_dir.resolve().parent
    probe_dir = out_dir if out_dir.exists() else parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputDirError(f"cannot create output directory {out_dir}: {err.strerror}. Pick another --out.") from None
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise OutputDirError(f"output directory {probe_dir} is not writable; pick another --out or fix its permissions.")


def _runtime_export(source: ModelSource, target: Target, max_seq_len: int, work: Path, stage: Stages):
    if target.runtime != "executorch":
        from slmdeploy.export import backends

        return backends.export(source, target, max_seq_len, work, stage)
    from slmdeploy.export.executorch import exporter

    if source.is_llm:
        return exporter.export_llm(source, target, max_seq_len, work, stage)
    return exporter.export_module(source, target, work, stage)


def _check_strict(delegation: dict[str, Any], target: Target) -> None:
    """``strict``: an op left outside the delegates (run by fallback CPU kernels) is an error."""
    fallback = delegation.get("fallback_ops") or {}
    if fallback:
        ops = ", ".join(f"{op}×{n}" for op, n in fallback.items())
        raise ExportError(
            f"strict export: {sum(fallback.values())} ops of {target.name} fell back outside "
            f"{'+'.join(target.delegates)} to CPU kernels: {ops}. Drop --strict to accept the fallback."
        )


def _from_cache(entry: Path, out: Path, target: Target, *, strict: bool, verify: bool) -> Artifact | None:
    """The cached artifact, placed in ``out``; None when the entry must be (re)built.

    A damaged entry is dropped. An entry exported with ``verify=False`` is not served to a
    verifying export (its verdict is "skipped"): that export rebuilds and verifies it, and
    the verified artifact replaces the entry.
    """
    if not entry.exists():
        return None
    try:
        cached = Artifact.open(entry)
        cached.verify()
    except ArtifactError:
        shutil.rmtree(entry, ignore_errors=True)
        return None
    if verify and cached.manifest.verification.get("status") == SKIPPED:
        return None
    if strict:
        _check_strict(cached.manifest.delegation, target)
    cache.materialize(entry, out)
    artifact = Artifact.open(out)
    artifact.cache_hit = True
    return artifact


def _verify(result, target: Target, source: ModelSource) -> dict[str, Any]:
    from slmdeploy.export import backends

    return backends.verify(result, target, source)


class _Request(NamedTuple):
    """What an export is of, where it goes, and its key in the export cache."""

    source: ModelSource
    target: Target
    max_seq_len: int
    out: Path
    tools: dict[str, str]
    target_desc: dict[str, Any]
    key: str


def _request(model, target, out_dir, max_seq_len) -> _Request:
    from slmdeploy.export import backends

    source = resolve(model)
    target = target if isinstance(target, Target) else load_target(target)
    backends.preflight(target)  # a missing toolchain fails here, before any work
    seq = int(max_seq_len or target.max_seq_len)
    if seq < 2:
        raise ExportError(f"max_seq_len must be at least 2, got {seq}.")
    out = Path(out_dir) if out_dir is not None else default_out_dir(source, target, seq)
    _check_out_dir(out)
    tools = cache.tool_versions()
    target_desc = target.as_dict() | {"max_seq_len": seq}
    return _Request(source, target, seq, out, tools, target_desc, cache.cache_key(source.fingerprint, target_desc, tools))


def cached(
    model: str | Path | ModelSource,
    target: str | Path | Target = DEFAULT_TARGET,
    out_dir: str | Path | None = None,
    *,
    max_seq_len: int | None = None,
    verify: bool = True,
    strict: bool = False,
) -> Artifact | None:
    """``export``'s result when the export cache has it (materialized at ``out_dir``), else None: nothing is built."""
    req = _request(model, target, out_dir, max_seq_len)
    return _from_cache(cache.entry_dir(req.key), req.out, req.target, strict=strict, verify=verify)


def export(
    model: str | Path | ModelSource,
    target: str | Path | Target = DEFAULT_TARGET,
    out_dir: str | Path | None = None,
    *,
    max_seq_len: int | None = None,
    force: bool = False,
    verify: bool = True,
    progress: bool = True,
    strict: bool = False,
) -> Artifact:
    """Export ``model`` (zoo name, HF checkpoint dir or ``ModelSource``) for ``target``.

    The result is cached by content: exporting the same model for the same target again
    returns the cached artifact (``artifact.cache_hit``) without rebuilding anything.
    ``strict`` turns any op that falls back outside the target's delegates into an error.
    """
    source, target, seq, out, tools, target_desc, key = _request(model, target, out_dir, max_seq_len)
    entry = cache.entry_dir(key)
    if not force and (hit := _from_cache(entry, out, target, strict=strict, verify=verify)) is not None:
        return hit

    stages = Stages(f"export {source.name} -> {target.name}", show=progress)
    start = time.perf_counter()
    work = cache.staging_dir(key)
    try:
        result = _runtime_export(source, target, seq, work, stages)
        if strict:
            _check_strict(result.delegation, target)
        for file in source.tokenizer_files():
            shutil.copy2(file, work / file.name)
            result.files.append((work / file.name, "tokenizer"))
        with stages("verify against eager PyTorch"):
            verification = _verify(result, target, source) if verify else {"status": SKIPPED}
        with stages("hash files + manifest"):
            files = [
                FileEntry(path=p.name, role=role, size=p.stat().st_size, sha256=sha256_file(p))
                for p, role in result.files
            ]
            manifest = Manifest(
                name=out.name,
                model={
                    "id": source.name,
                    "source": source.kind,
                    "fingerprint": source.fingerprint,
                    "params": _count_params(result.reference),
                    "architecture": source.facts(),
                    "config": source.config,
                },
                runtime=target.runtime,
                target=target_desc,
                delegates=list(target.delegates),
                quantization=result.quantization,
                methods=result.methods,
                files=files,
                tools=tools,
                export={
                    "wall_s": round(time.perf_counter() - start, 3),
                    "stages": stages.timings,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "cache_key": key,
                },
                llm=result.llm,
                delegation=result.delegation,
                verification=verification,
            )
            manifest.write(work)
        entry = cache.commit(work, key, replace=force or entry.exists())  # what is left is stale: replace it
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    cache.materialize(entry, out)
    return Artifact.open(out)


def _count_params(module) -> int | None:
    if module is None:
        return None
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
