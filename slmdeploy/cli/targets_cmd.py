from __future__ import annotations

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.command("targets")
@json_option
def targets_cmd(as_json: bool) -> None:
    """List the shipped export targets (runtime, delegates, quantization).

    \b
    Example:
      slmdeploy targets
      slmdeploy export llama-tiny --target ./my-target.toml   # a target file of your own
    """
    from rich.table import Table

    from slmdeploy.export.target import list_targets

    targets = list_targets()
    if as_json:
        emit_json([t.as_dict() for t in targets])
        return
    table = Table(header_style="bold")
    for col in ("target", "runtime", "delegates", "quant", "max seq", "description"):
        table.add_column(col)
    for t in targets:
        table.add_row(t.name, t.runtime, "+".join(t.delegates), t.quantization, str(t.max_seq_len), t.description)
    stdout.print(table)


@click.command("models")
@json_option
def models_cmd(as_json: bool) -> None:
    """List the built-in zoo: published SLM architectures, instantiated with random weights.

    \b
    Example:
      slmdeploy models
      slmdeploy bench smollm2-135m
    """
    from rich.table import Table

    from slmdeploy import zoo
    from slmdeploy.export.source import architecture_facts

    entries = [zoo.get(n) for n in zoo.names()]
    if as_json:
        emit_json([{"name": e.name, "description": e.description, "reference": e.reference,
                    "architecture": architecture_facts(e.hf_config)} for e in entries])
        return
    table = Table(header_style="bold")
    for col in ("model", "arch", "layers", "hidden", "heads/kv", "vocab", "description"):
        table.add_column(col)
    for e in entries:
        f = architecture_facts(e.hf_config)
        table.add_row(e.name, f["architecture"], str(f["layers"]), str(f["hidden_size"]), f"{f['heads']}/{f['kv_heads']}",
                      str(f["vocab_size"]), e.description)
    stdout.print(table)
