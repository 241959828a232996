from __future__ import annotations

from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.command("export")
@click.argument("model")
@click.option("--target", "-t", default="host-xnnpack", show_default=True, help="Target name (see `slmdeploy targets`) or a target .toml file.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Artifact directory [default: artifacts/MODEL-TARGET].")
@click.option("--max-seq-len", type=int, help="Override the target's max sequence length (KV cache size).")
@click.option("--force", is_flag=True, help="Rebuild even if the export cache has this artifact.")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against eager PyTorch.")
@click.option("--strict", is_flag=True, help="Fail if any op falls back outside the target's delegates.")
@json_option
def export_cmd(
    model: str, target: str, out_dir: Path | None, max_seq_len: int | None, force: bool, no_verify: bool, strict: bool, as_json: bool
) -> None:
    """Export MODEL (a zoo name or a Hugging Face checkpoint directory) for a target.
    NAME@<n>l is the zoo model cut to its first n layers (same widths; docs/zoo.md).

    \b
    Example:
      slmdeploy export smollm2-135m --target host-xnnpack-8da4w
      slmdeploy export tinyllama-1.1b@2l
      slmdeploy export ./my-checkpoint --target android-xnnpack-8da4w --out artifacts/mine
    """
    from slmdeploy.export import export

    artifact = export(
        model, target, out_dir, max_seq_len=max_seq_len, force=force, verify=not no_verify, progress=not as_json, strict=strict
    )
    m = artifact.manifest
    if as_json:
        emit_json({"artifact": str(artifact.path), "cache_hit": artifact.cache_hit, "manifest": m.to_dict()})
        return
    v = m.verification
    how = "cache hit" if artifact.cache_hit else f"exported in {m.export['wall_s']:.1f} s"
    stdout.print(
        f"[bold]{artifact.path}[/] ({how}): "
        f"{m.model_file.path} {m.model_file.size / (1 << 20):.1f} MiB, {m.runtime}/{'+'.join(m.delegates)}, "
        f"{m.quantization['scheme']}, max_seq_len {m.llm.max_seq_len if m.llm else '-'}"
    )
    for line in delegation_lines(m.delegation):
        stdout.print(line, highlight=False)
    detail = ", ".join(f"{k} {v[k]:.3g}" for k in ("relative_diff", "top1_agreement") if isinstance(v.get(k), float))
    if v.get("reason"):
        detail = f"({v['reason']})"
    stdout.print(f"parity vs eager PyTorch: [bold]{v.get('status')}[/] {detail}")
    if v.get("spec_check"):
        spec = v["spec_check"]
        stdout.print(f"Core ML spec check: [bold]{spec['status']}[/] ({'; '.join(spec['checks'] + spec['problems'])})")


def delegation_lines(d: dict) -> list[str]:
    """The manifest's ``delegation`` in words: what each delegate took, what fell back."""
    if not d:
        return []
    if d.get("note"):
        return [f"delegation: {d['note']}"]
    total = d["delegated_nodes"] + d["non_delegated_nodes"]
    takers = ", ".join(f"{name} {b['nodes']} ops in {b['subgraphs']} subgraphs" for name, b in d.get("by_delegate", {}).items())
    lines = [f"delegation: {d['delegated_nodes']} of {total} ops delegated ({d['delegated_fraction']:.0%}): {takers or 'none'}"]
    if "portable_ops" in d:
        lines.append(f"no delegate: all {sum(d['portable_ops'].values())} ops run on ExecuTorch's portable kernels")
    else:
        fallback = ", ".join(f"{op}×{n}" for op, n in d["fallback_ops"].items()) or "none"
        lines.append(f"fallback to CPU kernels: {fallback}")
    gpu = d.get("gpu_compatibility")
    if gpu:
        lines.append("GPU delegate: " + ("compatible (LiteRT analyzer)" if gpu["compatible"] else "; ".join(gpu["warnings"])))
    return lines
