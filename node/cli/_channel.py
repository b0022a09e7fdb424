"""``scnode channel open|close|list|settle``: virtual payment channels through the running
node."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from node.cli._common import fail, parse_amount, rpc_client, run_objective
from node.cli._settling import add_settle_arguments, run_settlement
from node.cli._tables import payments_table
from node.core.errors import ScnodeError


def register(subparsers: Any) -> None:
    """Add ``channel open|close|list|settle``."""
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
    add_settle_arguments(settle)
    settle.add_argument("--ledger", help="our ledger to settle through (default: the first)")
    for command in (open_, close):
        command.add_argument("--no-wait", action="store_true", help="return once started")
        command.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    for command in (open_, close, listing, settle):
        command.add_argument("--home", required=True, type=Path, help="the node's home")
        command.add_argument("--json", action="store_true", help="print JSON")
    open_.set_defaults(handler=channel_open_command)
    close.set_defaults(handler=channel_close_command)
    listing.set_defaults(handler=channel_list_command)
    settle.set_defaults(handler=channel_settle_command)


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
    """Start the settlement and wait until its challenges are on chain (with --wait: until
    it is paid out); the node finishes it by itself either way."""
    params = {"channel_id": namespace.channel}
    if namespace.ledger:
        params["ledger_id"] = namespace.ledger
    return run_settlement(namespace, "channel settle", "settle_payment_channel", params)
