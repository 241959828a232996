"""What every command shares: one-line errors, JSON output, quiet library logs."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from typing import Any

import click
from rich.console import Console

from slmdeploy.errors import SlmdeployError
from slmdeploy.signals import terminate_as_interrupt

# Wide tables stay readable when piped to a file or a CI log (no terminal width to go by).
stdout = Console(width=None if sys.stdout.isatty() else 200)
stderr = Console(stderr=True)


def quiet_libraries() -> None:
    """Torch/torchao/executorch log a lot at import; users want our output only."""
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    for name in ("torchao", "torch", "torch.utils._pytree", "executorch", "transformers", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")


class Group(click.Group):
    """Turns ``SlmdeployError`` into one line on stderr and its exit code, never a traceback; an interruption
    (Ctrl-C, SIGTERM, SIGHUP) into a line and 128 + the signal."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with terminate_as_interrupt():  # SIGTERM/SIGHUP clean up as Ctrl-C does, in every command
                return super().invoke(ctx)
        except SlmdeployError as err:
            stderr.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM/SIGHUP (signals.Terminated)
            signum = getattr(err, "signum", signal.SIGINT)
            stderr.print(f"[bold red]interrupted[/] ({signal.Signals(signum).name}): what was already measured "
                         "is kept in the run directory.")
            sys.exit(128 + signum)


def emit_json(data: Any, compact: bool = False) -> None:
    """Strict JSON on stdout: a NaN or infinity anywhere becomes null (bare NaN is not JSON).

    ``compact``: one line, for large outputs (Python's fast C encoder only runs without indent).
    """
    indent = None if compact else 2
    try:
        text = json.dumps(data, indent=indent, default=str, allow_nan=False)
    except ValueError:
        from slmdeploy.analysis.jsonsafe import clean

        text = json.dumps(clean(data), indent=indent, default=str, allow_nan=False)
    click.echo(text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
