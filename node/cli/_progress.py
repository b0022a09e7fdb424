"""A run of batch payments with a live progress bar and rate."""

from __future__ import annotations

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

from node.cli._paying import BatchPayer, PaymentRun


class RateColumn(ProgressColumn):
    """Payments per second, over the progress bar's recent window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} payments/s" if speed else "- payments/s", style="cyan")


def pay_with_progress(
    payer: BatchPayer, channel: str, amount: int, count: int, console: Console | None
) -> PaymentRun:
    """``payer.pay`` with a live progress bar and rate on ``console`` (none: quietly)."""
    if console is None:
        return payer.pay(channel, amount, count)
    columns = (
        TextColumn("paying"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("paying", total=count)
        return payer.pay(channel, amount, count, lambda done: progress.advance(task, done))
