"""A live progress bar and rate for a run of payments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Payments per second, over the progress bar's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} payments/s" if speed else "- payments/s", style="cyan")


@contextmanager
def progress_bar(console: Console, count: int) -> Iterator[Callable[[int], None]]:
    """A bar of ``count`` payments on ``console``; yields ``advance(n)`` for n more done."""
    columns = (
        TextColumn("paying"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("paying", total=count)
        yield lambda done: progress.advance(task, done)
