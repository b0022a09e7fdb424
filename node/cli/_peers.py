"""``scnode peers`` and ``scnode connect``: the peer store from the command line."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from node.core.errors import InvalidValueError
from node.home import NodeHome
from node.p2p import PeerRecord, PeerStore, parse_peer_multiaddr


def register(subparsers: Any) -> None:
    """Add the ``peers`` and ``connect`` subcommands."""
    peers = subparsers.add_parser("peers", help="list the peers this node knows")
    peers.add_argument("--home", required=True, type=Path, help="the node's home directory")
    peers.set_defaults(handler=peers_command)
    connect = subparsers.add_parser(
        "connect", help="add a peer by multiaddr; the node dials it and keeps redialling it"
    )
    connect.add_argument("multiaddr", help="/ip4/HOST/tcp/PORT/p2p/16Uiu2...")
    connect.add_argument("--home", required=True, type=Path, help="the node's home directory")
    connect.set_defaults(handler=connect_command)


def _last_seen(record: PeerRecord) -> str:
    if record.last_seen_ms == 0:
        return "never"
    moment = datetime.datetime.fromtimestamp(record.last_seen_ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def peers_table(records: list[PeerRecord]) -> Table:
    """A rich table of peer records."""
    table = Table(title="known peers")
    for column in ("peer id", "address", "multiaddrs", "connected", "dial", "last seen"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record.peer_id,
            record.address,
            "\n".join(record.multiaddrs) or "-",
            "yes" if record.connected else "no",
            "yes" if record.dial else "no",
            _last_seen(record),
        )
    return table


def peers_command(namespace: argparse.Namespace) -> int:
    """Print the persisted peer store."""
    console = Console()
    try:
        store = PeerStore.load(NodeHome(namespace.home).p2p_path)
    except InvalidValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    records = store.records()
    if not records:
        console.print(f"no known peers in {store.path}")
        return 0
    console.print(peers_table(records))
    return 0


def connect_command(namespace: argparse.Namespace) -> int:
    """Add a peer to the store, marked to be dialled."""
    console = Console()
    home = NodeHome(namespace.home)
    try:
        text, peer_id = parse_peer_multiaddr(namespace.multiaddr)
        store = PeerStore.load(home.p2p_path)
    except InvalidValueError as error:
        console.print(f"[red]error:[/red] {error}")
        return 1
    record = store.add(peer_id, [text], dial=True)
    store.save()
    console.print(f"added {record.peer_id} ({record.address}) to {store.path}")
    console.print(
        "A running node reads the peer store within a second and dials the peer;"
        " a stopped node dials it on its next start, and redials it whenever it drops."
    )
    return 0
