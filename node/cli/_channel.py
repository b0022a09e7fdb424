"""``scnode channel open|close|list|settle`` (virtual payment channels) and ``scnode pay``."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
from rich.table import Table
from rich.text import Text

from node.cli._common import fail, parse_amount, rpc_client, run_objective, wei_text
from node.cli._paying import BatchPayer, PaymentRun
from node.core.errors import ScnodeError

_SETTLE_POLL_S = 2.0


def register_payments(subparsers: Any) -> None:
    """Add ``channel`` and ``pay``."""
    channel = subparsers.add_parser("channel", help="open, close and list payment channels")
    commands = channel.add_subparsers(dest="channel_command", metavar="COMMAND", required=True)
    open_ = commands.add_parser("open", help="open a virtual payment channel to a peer")
    open_.add_argument("--counterparty", required=True, help="the payee's address")
    open_.add_argument("--amount", required=True, type=parse_amount, help="what we lock")
    route = open_.add_mutually_exclusive_group()
    route.add_argument(
        "--via",
        action="append",
        metavar="ADDRESS",
        help="an intermediary, in path order (repeat; default: the node finds a route)",
    )
    route.add_argument(
        "--direct", action="store_true", help="no intermediary: funded by our ledger with them"
    )
    open_.add_argument("--asset", help="an ERC20 address (default: the native coin)")
    open_.add_argument("--challenge-duration", type=int, help="seconds")
    close = commands.add_parser("close", help="close a payment channel we pay on")
    close.add_argument("--channel", required=True, help="the channel id (0x...)")
    listing = commands.add_parser("list", help="the payment channels and what they paid")
    settle = commands.add_parser(
        "settle", help="enforce a payment channel on chain (its other party is gone)"
    )
    settle.add_argument("--channel", required=True, help="the channel id (0x...)")
    settle.add_argument("--ledger", help="our ledger to settle through (default: the first)")
    settle.add_argument(
        "--wait", action="store_true", help="wait out the challenge and pay out (else run again)"
    )
    settle.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
    for command in (open_, close):
        command.add_argument("--no-wait", action="store_true", help="return once started")
        command.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    pay = subparsers.add_parser("pay", help="pay on a payment channel")
    pay.add_argument("--channel", required=True, help="the channel id (0x...)")
    pay.add_argument("--amount", required=True, type=parse_amount, help="each payment")
    pay.add_argument("--count", type=_positive, default=1, help="how many payments (default 1)")
    for command in (open_, close, listing, settle, pay):
        command.add_argument("--home", required=True, type=Path, help="the node's home")
        command.add_argument("--json", action="store_true", help="print JSON")
    open_.set_defaults(handler=channel_open_command)
    close.set_defaults(handler=channel_close_command)
    listing.set_defaults(handler=channel_list_command)
    settle.set_defaults(handler=channel_settle_command)
    pay.set_defaults(handler=pay_command)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 1")
    return int(text)


def open_params(namespace: argparse.Namespace) -> dict[str, Any]:
    """The ``create_payment_channel`` params of ``channel open`` (pure)."""
    params: dict[str, Any] = {
        "counterparty": namespace.counterparty,
        "amount": str(namespace.amount),
    }
    if namespace.direct:
        params["intermediaries"] = []
    elif namespace.via:
        params["intermediaries"] = list(namespace.via)
    if namespace.asset:
        params["asset"] = namespace.asset
    if namespace.challenge_duration is not None:
        params["challenge_duration"] = namespace.challenge_duration
    return params


def _payment_channel(client: Any, channel: str) -> Any:
    return client.call("get_payment_channel", channel_id=channel)


def channel_open_command(namespace: argparse.Namespace) -> int:
    """Open a virtual channel and wait until it is funded."""
    params = open_params(namespace)
    return run_objective(
        namespace,
        "channel open",
        lambda client: client.call("create_payment_channel", **params),
        _payment_channel,
        payments_table,
    )


def channel_close_command(namespace: argparse.Namespace) -> int:
    """Close a virtual channel and wait until its ledgers paid it out."""
    return run_objective(
        namespace,
        "channel close",
        lambda client: client.call("close_payment_channel", channel_id=namespace.channel),
        _payment_channel,
        payments_table,
    )


def payment_channels(client: Any) -> list[Any]:
    """Every payment channel funded through one of our ledger channels, by id."""
    found: dict[str, Any] = {}
    for ledger in client.call("get_all_ledger_channels"):
        for channel in client.call("get_payment_channels_by_ledger", channel_id=ledger["id"]):
            found[channel["id"]] = channel
    return [found[channel] for channel in sorted(found)]


def channel_list_command(namespace: argparse.Namespace) -> int:
    """Print every payment channel."""
    from node.rpc import RpcConnectionError, RpcError

    try:
        channels = payment_channels(rpc_client(namespace.home))
    except (ScnodeError, RpcError, RpcConnectionError) as error:
        return fail("channel list", error)
    if namespace.json:
        print(json.dumps(channels, indent=2))
    elif not channels:
        Console().print("no payment channels")
    else:
        Console().print(payments_table(channels))
    return 0


def channel_settle_command(namespace: argparse.Namespace) -> int:
    """Challenge on chain, then (now with --wait, or when run again later) reclaim and pay out."""
    from node.rpc import RpcConnectionError, RpcError

    params = {"channel_id": namespace.channel}
    if namespace.ledger:
        params["ledger_id"] = namespace.ledger
    console = None if namespace.json else Console()
    deadline = time.monotonic() + namespace.timeout
    try:
        client = rpc_client(namespace.home)
        answer = client.call("settle_payment_channel", **params)
        status = console.status("waiting for the challenges to finalize") if console else None
        with status or contextlib.nullcontext():
            while namespace.wait and answer["stage"] != "SETTLED":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not settled within {namespace.timeout:g} s")
                time.sleep(_SETTLE_POLL_S)
                answer = client.call("settle_payment_channel", **params)
    except (ScnodeError, RpcError, RpcConnectionError, TimeoutError) as error:
        return fail("channel settle", error)
    if console is None:
        print(json.dumps(answer, indent=2))
    elif answer["stage"] == "SETTLED":
        console.print(
            f"settled on chain: paid {wei_text(str(answer['paid']))} by vouchers;"
            f" paid out to us {wei_text(str(answer['payout']))}",
            soft_wrap=True,
        )
    else:
        when = datetime.fromtimestamp(answer["finalizes_at"], UTC).isoformat()
        console.print(f"challenged on chain; run this again after {when} to pay out")
    return 0


def pay_command(namespace: argparse.Namespace) -> int:
    """Pay ``--count`` times ``--amount``; batches with a progress bar when more than one."""
    from node.engine import read_rpc_url
    from node.home import NodeHome
    from node.rpc import RpcConnectionError, RpcError, load_rpc_token

    console = None if namespace.json else Console()
    try:
        if namespace.count == 1:
            client = rpc_client(namespace.home)
            answer = client.call("pay", channel_id=namespace.channel, amount=str(namespace.amount))
            run = PaymentRun(1, int(answer["paid"]), 0.0)
        else:
            home = NodeHome(namespace.home)
            payer = BatchPayer(read_rpc_url(home), load_rpc_token(home))
            run = pay_with_progress(
                payer, namespace.channel, namespace.amount, namespace.count, console
            )
    except (ScnodeError, RpcError, RpcConnectionError, ValueError) as error:
        return fail("pay", error)
    if console is None:
        print(json.dumps(_run_json(namespace, run), indent=2))
    else:
        rate = f" in {run.seconds:.2f} s ({run.per_second:,.0f} payments/s)" if run.seconds else ""
        console.print(
            f"paid {run.count} × {wei_text(str(namespace.amount))}{rate};"
            f" total paid on {namespace.channel}: {wei_text(str(run.paid))}",
            soft_wrap=True,
        )
    return 0


def _run_json(namespace: argparse.Namespace, run: PaymentRun) -> dict[str, Any]:
    return {
        "channel_id": namespace.channel,
        "payments": run.count,
        "amount": str(namespace.amount),
        "paid": str(run.paid),
        "seconds": round(run.seconds, 6),
        "per_second": round(run.per_second, 1),
    }


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


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address


def payments_table(channels: list[Any]) -> Table:
    """Payment channels as a rich table."""
    table = Table(title="payment channels")
    for column in ("channel", "status", "payer", "payee", "via", "funds", "paid", "received"):
        table.add_column(column, overflow="fold")
    for channel in channels:
        table.add_row(
            channel["id"][:18] + "...",
            channel["status"],
            _short(channel["payer"]),
            _short(channel["payee"]),
            ", ".join(_short(hop) for hop in channel["intermediaries"]) or "direct",
            wei_text(channel["funds"]),
            wei_text(channel["paid"]),
            wei_text(channel["received"]),
        )
    return table
