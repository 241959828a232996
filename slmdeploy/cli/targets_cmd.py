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
@click.option("--survey", "survey_only", is_flag=True,
              help="Only the SLM survey's models (arXiv 2409.15790), with the survey row each reproduces (docs/zoo.md).")
@json_option
def models_cmd(survey_only: bool, as_json: bool) -> None:
    """List the built-in zoo: published SLM architectures, instantiated with random weights.

    \b
    Example:
      slmdeploy models
      slmdeploy models --survey --json
      slmdeploy bench smollm2-135m
    """
    from rich.table import Table

    from slmdeploy import zoo
    from slmdeploy.export.source import architecture_facts

    entries = [e for e in (zoo.get(n) for n in zoo.names()) if e.survey or not survey_only]
    if as_json:
        emit_json([{"name": e.name, "description": e.description, "reference": e.reference,
                    "survey": {"model": e.survey.model, "parameters": e.survey.parameters} if e.survey else None,
                    "architecture": architecture_facts(e.hf_config)} for e in entries])
        return
    table = Table(header_style="bold")
    columns = ("model", "arch", "layers", "hidden", "heads/kv", "vocab") + (("survey model", "size") if survey_only else ("description",))
    for col in columns:
        table.add_column(col)
    for e in entries:
        f = architecture_facts(e.hf_config)
        tail = (e.survey.model, e.survey.parameters) if survey_only else (e.description,)
        table.add_row(e.name, f["architecture"], str(f["layers"]), str(f["hidden_size"]), f"{f['heads']}/{f['kv_heads']}",
                      str(f["vocab_size"]), *tail)
    stdout.print(table)
