"""``scnode run``: a node in this process until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any

from node.cli._common import parse_amount
from node.core import constants
from node.core.errors import ScnodeError

_LISTEN = re.compile(r"/ip4/(?P<host>[0-9.]+)/tcp/(?P<port>[0-9]{1,5})")


def parse_listen(text: str) -> tuple[str, int]:
    """``/ip4/HOST/tcp/PORT`` as ``(host, port)``.

    Raises:
        argparse.ArgumentTypeError: another form.
    """
    match = _LISTEN.fullmatch(text)
    if match is None or int(match["port"]) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected /ip4/HOST/tcp/PORT")
    return match["host"], int(match["port"])


def _metrics_address(text: str) -> tuple[str, int]:
    """``--metrics HOST:PORT``.

    Raises:
        argparse.ArgumentTypeError: another form.
    """
    from node.metrics import parse_metrics_address

    try:
        return parse_metrics_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers: Any) -> None:
    """Add ``run``."""
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
    _add_module_options(run)
    run.add_argument("--rpc-port", type=int, default=0, help="JSON-RPC port (default: any)")
    run.add_argument(
        "--deposit-max",
        type=parse_amount,
        default=constants.engine_policy_deposit_max_default,
        help="the most a peer's channel may ask us to deposit, per asset",
    )
    run.add_argument(
        "--confirmations",
        type=int,
        help="blocks an adjudicator event needs before it counts (default: by chain id,"
        " 0 on a development chain such as 31337, 12 elsewhere)",
    )
    run.add_argument(
        "--challenge-duration-min",
        type=int,
        help="the shortest challenge duration (s) accepted in a channel "
        "(default: an hour; with --devnet, 10 s)",
    )
    run.add_argument(
        "--challenge-duration-max",
        type=int,
        help="the longest challenge duration (s) accepted (default: 30 days; with --devnet, a day)",
    )
    run.add_argument(
        "--challenge-duration",
        type=int,
        help="the challenge duration (s) of the channels this node proposes "
        "(default: a day; with --devnet, 60 s)",
    )
    run.add_argument(
        "--watchtower",
        action="store_true",
        help="serve as a watchtower: answer stale challenges of clients' channels (gas from"
        " this node's chain key)",
    )
    run.add_argument(
        "--watchtower-client",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="with --watchtower: a client served (repeat; default: any peer)",
    )
    run.add_argument(
        "--use-watchtower",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="dial this watchtower and hand it our channels (repeat)",
    )
    _add_reporting(run)
    run.set_defaults(handler=run_command)


def _add_reporting(run: argparse.ArgumentParser) -> None:
    """What the node tells others: gossip, its metrics, its log lines."""
    run.add_argument("--no-gossip", action="store_true", help="do not announce on gossip")
    run.add_argument(
        "--metrics",
        type=_metrics_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any free one)",
    )
    run.add_argument("--verbose", action="store_true", help="log every step")


def _add_module_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--module",
        type=Path,
        help="the engine's derivation module (.wasm); it must pass the engine's part of"
        " `scnode derive check`",
    )
    run.add_argument(
        "--view",
        action="append",
        default=[],
        type=Path,
        metavar="FILE.wasm",
        help="also run this module as a view: its tables in HOME/views/NAME.sqlite, queried"
        " with `scnode sql` (repeat; the home remembers it until `scnode views remove`)",
    )


def run_command(namespace: argparse.Namespace) -> int:
    """Run a node until SIGINT or SIGTERM."""
    import gc

    import trio

    # A node allocates many short-lived values per message and keeps few cycles: with
    # Python's default (a collection every 700 allocations) a busy hub spent 5 % of its
    # CPU collecting (scripts/bench_hub.py), 1 % with this.
    gc.set_threshold(*constants.gc_thresholds)

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
        challenge_duration_min=namespace.challenge_duration_min,
        challenge_duration_max=namespace.challenge_duration_max,
        challenge_duration=namespace.challenge_duration,
        watchtower=namespace.watchtower,
        watchtower_clients=tuple(namespace.watchtower_client),
        use_watchtowers=tuple(namespace.use_watchtower),
        metrics=namespace.metrics,
        views=tuple(namespace.view),
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
            if started.metrics_url is not None:
                print(f"metrics on {started.metrics_url}", flush=True)
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
