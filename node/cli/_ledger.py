"""``scnode ledger open|close|list|settle``: ledger channels through the running node."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from node.cli._common import fail, parse_amount, rpc_client, run_objective
from node.cli._settling import add_settle_arguments, run_settlement
from node.cli._tables import channels_table
from node.core.errors import ScnodeError


def register(subparsers: Any) -> None:
    """Add ``ledger open|close|list|settle``."""
    ledger = subparsers.add_parser("ledger", help="open, close and list ledger channels")
    commands = ledger.add_subparsers(dest="ledger_command", metavar="COMMAND", required=True)
    open_ = commands.add_parser("open", help="open and fund a ledger channel with a peer")
    open_.add_argument("--counterparty", required=True, help="the peer's address")
    open_.add_argument("--amount", required=True, type=parse_amount, help="what we deposit")
    open_.add_argument(
        "--counterparty-amount", type=parse_amount, default=0, help="what the peer deposits"
    )
    open_.add_argument("--asset", help="an ERC20 address (default: the native coin)")
    open_.add_argument("--challenge-duration", type=int, help="seconds")
    close = commands.add_parser("close", help="close a ledger channel and pay it out")
    close.add_argument("--channel", required=True, help="the channel id (0x...)")
    listing = commands.add_parser("list", help="the ledger channels and their state")
    settle = commands.add_parser(
        "settle",
        help="leave a ledger channel on chain without its counterparty (it is gone or stalls)",
    )
    add_settle_arguments(settle)
    for command in (open_, close, listing, settle):
        command.add_argument("--home", required=True, type=Path, help="the node's home")
        command.add_argument("--json", action="store_true", help="print JSON")
    for command in (open_, close):
        command.add_argument("--no-wait", action="store_true", help="return once started")
        command.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    open_.set_defaults(handler=ledger_open_command)
    close.set_defaults(handler=ledger_close_command)
    listing.set_defaults(handler=ledger_list_command)
    settle.set_defaults(handler=ledger_settle_command)


def _run_ledger_objective(
    namespace: argparse.Namespace, command: str, method: str, **params: Any
) -> int:
    return run_objective(
        namespace,
        f"ledger {command}",
        lambda client: client.call(method, **params),
        lambda client, channel: client.call("get_ledger_channel", channel_id=channel),
        channels_table,
    )


def ledger_open_command(namespace: argparse.Namespace) -> int:
    """Open a ledger channel and wait until it is funded."""
    params: dict[str, Any] = {
        "counterparty": namespace.counterparty,
        "amount": str(namespace.amount),
        "counterparty_amount": str(namespace.counterparty_amount),
    }
    if namespace.asset:
        params["asset"] = namespace.asset
    if namespace.challenge_duration is not None:
        params["challenge_duration"] = namespace.challenge_duration
    return _run_ledger_objective(namespace, "open", "create_ledger_channel", **params)


def ledger_close_command(namespace: argparse.Namespace) -> int:
    """Close a ledger channel and wait until it is paid out."""
    return _run_ledger_objective(
        namespace, "close", "close_ledger_channel", channel_id=namespace.channel
    )


def ledger_list_command(namespace: argparse.Namespace) -> int:
    """Print every ledger channel."""
    from node.rpc import RpcConnectionError, RpcError

    try:
        channels = rpc_client(namespace.home).call("get_all_ledger_channels")
    except (ScnodeError, RpcError, RpcConnectionError) as error:
        return fail("ledger list", error)
    if namespace.json:
        print(json.dumps(channels, indent=2))
    elif not channels:
        Console().print("no ledger channels")
    else:
        Console().print(channels_table(channels))
    return 0


def ledger_settle_command(namespace: argparse.Namespace) -> int:
    """Challenge the ledger with its latest supported state (and every channel it funds),
    wait until the challenges are on chain (with --wait: until it is paid out)."""
    params = {"channel_id": namespace.channel}
    return run_settlement(namespace, "ledger settle", "settle_ledger_channel", params)
