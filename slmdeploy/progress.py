"""Progress display for long work, on stderr so ``--json`` output on stdout stays clean."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

stderr = Console(stderr=True)


class Stages:
    """Named stages of one job: shown as a spinner line each, timed for the record."""

    def __init__(self, title: str, show: bool = True) -> None:
        self.title = title
        self.show = show
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        if self.show:
            with stderr.status(f"[bold]{self.title}[/]: {name} ..."):
                yield
        else:
            yield
        elapsed = time.perf_counter() - start
        self.timings[name] = round(elapsed, 3)
        if self.show:
            stderr.print(f"  [green]✓[/] {name} [dim]({elapsed:.1f} s)[/]")


def transfer_progress(show: bool = True) -> Progress:
    """A byte-count progress bar for pushes and pulls."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=stderr,
        disable=not show,
        transient=True,
    )


def count_progress(show: bool = True) -> Progress:
    """A progress bar over a count of steps (benchmark runs)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=stderr,
        disable=not show,
        transient=True,
    )
