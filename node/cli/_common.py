"""``scnode run`` and ``scnode ledger open|close|list`` (``channel`` and ``pay``: see
``_channel``)."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from node.core import constants
from node.core.errors import ScnodeError

_LISTEN = re.compile(r"/ip4/(?P<host>[0-9.]+)/tcp/(?P<port>[0-9]{1,5})")
_AMOUNT = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>eth|gwei|wei)?", re.IGNORECASE)
_UNITS = {"eth": 10**18, "gwei": 10**9, "wei": 1}
_POLL_S = 0.2
_AMOUNT_DIGITS_MAX = 200
_FINISHED = ("DONE", "FAILED")


def parse_amount(text: str) -> int:
    """``"1.5eth"``, ``"20 gwei"`` or ``"1000"`` (wei) as wei.

    Raises:
        argparse.ArgumentTypeError: not an amount, or not a whole number of wei.
    """
    match = _AMOUNT.fullmatch(text.strip())
    if match is None or len(text) > _AMOUNT_DIGITS_MAX // 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 1000, 20gwei or 1.5eth")
    try:
        with localcontext() as context:
            context.prec = _AMOUNT_DIGITS_MAX  # exact: uint256 amounts have 78 digits
            value = Decimal(match["number"]) * _UNITS[(match["unit"] or "wei").lower()]
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if value != value.to_integral_value() or value > constants.uint256_max:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number of wei in uint256")
    return int(value)


def parse_listen(text: str) -> tuple[str, int]:
    """``/ip4/HOST/tcp/PORT`` as ``(host, port)``.

    Raises:
        argparse.ArgumentTypeError: another form.
    """
    match = _LISTEN.fullmatch(text)
    if match is None or int(match["port"]) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected /ip4/HOST/tcp/PORT")
    return match["host"], int(match["port"])


def register(subparsers: Any) -> None:
    """Add ``run``, ``ledger``, ``channel`` and ``pay``."""
    run = subparsers.add_parser("run", help="run the node: p2p, chain, JSON-RPC and the engine")
    run.add_argument("--home", required=True, type=Path, help="the node's home directory")
    run.add_argument(
        "--listen", type=parse_listen, default=("127.0.0.1", 0), help="/ip4/HOST/tcp/PORT"
    )
    run.add_argument("--chain-url", help="the chain's JSON-RPC URL")
    run.add_argument("--devnet", type=Path, help="a devnet directory (chain URL and contracts)")
    run.add_argument("--adjudicator", help="the adjudicator address (without --devnet)")
    run.add_argument("--consensus-app", help="the ConsensusApp address (without --devnet)")
    run.add_argument(
        "--virtual-payment-app",
        help="the VirtualPaymentApp address (without --devnet; none: no payment channels)",
    )
    run.add_argument("--peer", action="append", default=[], help="a peer multiaddr to dial")
    run.add_argument("--module", type=Path, help="the derivation module (.wasm)")
    run.add_argument("--rpc-port", type=int, default=0, help="JSON-RPC port (default: any)")
    run.add_argument(
        "--deposit-max",
        type=parse_amount,
        default=constants.engine_policy_deposit_max_default,
        help="the most a peer's channel may ask us to deposit, per asset",
    )
    run.add_argument("--confirmations", type=int, default=constants.chain_confirmations_default)
    run.add_argument("--no-gossip", action="store_true", help="do not announce on gossip")
    run.add_argument("--verbose", action="store_true", help="log every step")
    run.set_defaults(handler=run_command)
    _register_ledger(subparsers)
    # Imported here: that module builds on this one's helpers.
    from node.cli._channel import register_payments

    register_payments(subparsers)


def _register_ledger(subparsers: Any) -> None:
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
    for command in (open_, close, listing):
        command.add_argument("--home", required=True, type=Path, help="the node's home")
        command.add_argument("--json", action="store_true", help="print JSON")
    for command in (open_, close):
        command.add_argument("--no-wait", action="store_true", help="return once started")
        command.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    open_.set_defaults(handler=ledger_open_command)
    close.set_defaults(handler=ledger_close_command)
    listing.set_defaults(handler=ledger_list_command)


# ---------------------------------------------------------------------- run


def run_command(namespace: argparse.Namespace) -> int:
    """Run a node until SIGINT or SIGTERM."""
    import trio

    from node.engine import NodeOptions, run_node

    logging.basicConfig(
        level=logging.INFO if namespace.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    host, port = namespace.listen
    options = NodeOptions(
        home=namespace.home,
        listen_host=host,
        listen_port=port,
        chain_url=namespace.chain_url,
        devnet=namespace.devnet,
        adjudicator=namespace.adjudicator,
        consensus_app=namespace.consensus_app,
        payment_app=namespace.virtual_payment_app,
        peers=tuple(namespace.peer),
        rpc_port=namespace.rpc_port,
        deposit_max=namespace.deposit_max,
        confirmations=namespace.confirmations,
        gossip=not namespace.no_gossip,
        **({"module": namespace.module} if namespace.module else {}),
    )

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            started = await nursery.start(run_node, options)
            print(f"scnode node {started.address}", flush=True)
            print(f"peer id {started.peer_id}", flush=True)
            for multiaddr in started.multiaddrs:
                print(f"listening on {multiaddr}", flush=True)
            print(f"chain {started.chain_url}", flush=True)
            print(f"derivation module sha256 {started.module_sha256}", flush=True)
            print(f"JSON-RPC on {started.rpc_url}", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for received in signals:
                    print(f"stopping on {signal.Signals(received).name}", flush=True)
                    nursery.cancel_scope.cancel()
                    break

    failures: list[str] = []
    try:
        trio.run(main)
    except* (ScnodeError, OSError) as group:
        failures.extend(str(error) for error in group.exceptions)
    for failure in failures:
        print(f"scnode run: {failure}", file=sys.stderr)
    return 1 if failures else 0


# ---------------------------------------------------------------------- ledger


def rpc_client(home: Path) -> Any:
    """A blocking JSON-RPC client of the node running in ``home``."""
    from node.engine import read_rpc_url
    from node.home import NodeHome
    from node.rpc import RpcSyncClient, load_rpc_token

    node_home = NodeHome(home)
    return RpcSyncClient(read_rpc_url(node_home), load_rpc_token(node_home))


def fail(command: str, error: Exception) -> int:
    """Say why ``scnode COMMAND`` failed; returns its exit code."""
    print(f"scnode {command}: {error}", file=sys.stderr)
    return 1


def wait_objective(
    client: Any, objective_id: str, timeout_s: float, console: Console | None
) -> Any:
    """Poll the objective until it is done or failed, showing its pause point."""
    deadline = time.monotonic() + timeout_s
    info = client.call("get_objective", objective_id=objective_id)
    status = console.status(f"{objective_id[:30]}...") if console else None
    if status is not None:
        status.start()
    try:
        while info["status"] not in _FINISHED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{objective_id} still waiting for {info['waiting_for']}")
            if status is not None:
                status.update(f"waiting for {info['waiting_for'] or 'the node'} ...")
            time.sleep(_POLL_S)
            info = client.call("get_objective", objective_id=objective_id)
    finally:
        if status is not None:
            status.stop()
    return info


def run_objective(
    namespace: argparse.Namespace,
    command: str,
    started: Callable[[Any], Any],
    shown: Callable[[Any, str], Any],
    table: Callable[[list[Any]], Table],
) -> int:
    """Start an objective (``started(client)``), wait for it unless ``--no-wait``, then
    print its channel (``shown(client, channel_id)``) as ``table`` or JSON."""
    from node.rpc import RpcConnectionError, RpcError

    console = None if namespace.json else Console()
    try:
        client = rpc_client(namespace.home)
        created = started(client)
        info: Any = {"status": "STARTED", "id": created["objective_id"]}
        if not namespace.no_wait:
            info = wait_objective(client, created["objective_id"], namespace.timeout, console)
        channel = shown(client, created["channel_id"])
    except (ScnodeError, RpcError, RpcConnectionError, TimeoutError) as error:
        return fail(command, error)
    if console is None:
        print(json.dumps({"objective": info, "channel": channel}, indent=2))
    else:
        console.print(f"{created['objective_id']}: {info['status']}", soft_wrap=True)
        if info.get("failure"):
            console.print(f"[red]failed:[/red] {info['failure']}")
        console.print(table([channel]))
    return 0 if info["status"] != "FAILED" else 1


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


def channels_table(channels: list[Any]) -> Table:
    """Ledger channels as a rich table."""
    table = Table(title="ledger channels")
    for column in ("channel", "status", "counterparty", "turn", "asset", "me", "them", "held"):
        table.add_column(column, overflow="fold")
    for channel in channels:
        held = {holding["asset"]: holding["amount"] for holding in channel["holdings"]}
        rows = channel["balances"] or [{"asset": "-", "me": "-", "them": "-"}]
        for balance in rows:
            table.add_row(
                channel["id"][:18] + "...",
                channel["status"],
                channel["counterparty"] or "-",
                str(channel["turn_num"]),
                _asset_name(balance["asset"]),
                wei_text(balance["me"]),
                wei_text(balance["them"]),
                wei_text(held.get(balance["asset"], "0")),
            )
    return table


def _asset_name(asset: str) -> str:
    return "ETH" if asset == "0x" + "0" * 40 else asset


def wei_text(amount: str) -> str:
    """A decimal amount of wei for a person: in ETH from 0.001 ETH up."""
    if not amount.isdigit():
        return amount
    value = int(amount)
    return f"{Decimal(value) / 10**18:f} ETH" if value >= 10**15 else f"{value} wei"
