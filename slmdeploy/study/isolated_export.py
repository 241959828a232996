"""A study's exports, each built in a process of its own.

A lab study exports dozens of models one after another. torch.export, lowering and the
parity check leave gigabytes behind in the process that ran them (measured: a study runner
at 16.7 GB RSS after ten exports of 111M-256M models), so a long study would end in the
OOM killer. A child process gives all of it back when it exits. Cache hits stay in
process: they cost a lookup, not a Python start-up with torch.
"""

from __future__ import annotations

from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path

from slmdeploy.errors import ExportError
from slmdeploy.export.api import cached, export
from slmdeploy.export.artifact import Artifact


def _export_in_child(conn: Connection, model: str, target: str, out_dir: str, max_seq_len: int | None,
                     progress: bool) -> None:
    try:
        conn.send(("ok", str(export(model, target, out_dir, max_seq_len=max_seq_len, progress=progress).path)))
    except Exception as err:  # the parent raises it as if it had exported itself
        try:
            conn.send(("error", err))
        except Exception:  # an error that does not pickle: its type and text
            conn.send(("error", ExportError(f"{type(err).__name__}: {err}")))


def export_isolated(model: str, target: str, out_dir: Path, *, max_seq_len: int | None = None,
                    progress: bool = False) -> Artifact:
    """``export`` with the same result and errors; a build (not a cache hit) runs in a fresh process,
    which is stopped with the runner (Ctrl-C, SIGTERM) rather than left to finish."""
    hit = cached(model, target, out_dir, max_seq_len=max_seq_len)
    if hit is not None:
        return hit
    ctx = get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_export_in_child, args=(send, model, target, str(out_dir), max_seq_len, progress),
                        name=f"export {model} -> {target}")
    child.start()
    send.close()
    result = None
    try:
        result = receive.recv()
    except EOFError:  # the child exited without a word
        pass
    finally:
        if result is None:  # interrupted, or dead: never leave a build running behind the runner
            child.terminate()
        child.join()
    if result is None:
        raise ExportError(f"the export process of {model} -> {target} died (exit {child.exitcode}) before it finished: "
                          "killed, or out of memory (a model this size may need more RAM than this host has free)")
    kind, value = result
    if kind == "error":
        raise value
    return Artifact.open(value)
