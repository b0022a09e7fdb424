"""``scnode devnet up|down``: a local anvil devnet with our contracts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from node.chain import DEVNET_FILE, devnet_down, devnet_up
from node.core.errors import ChainError

DEFAULT_DIR = Path("devnet")


def register(subparsers: Any) -> None:
    """Adds the ``devnet`` command and its ``up`` and ``down`` actions."""
    devnet = subparsers.add_parser("devnet", help="run a local anvil devnet with the contracts")
    actions = devnet.add_subparsers(dest="devnet_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start anvil, deploy, fund the node accounts")
    up.add_argument("--nodes", type=int, default=2, help="node accounts to fund (default 2)")
    up.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where {DEVNET_FILE} goes")
    up.set_defaults(handler=_up)
    down = actions.add_parser("down", help="stop the devnet started in --dir")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"where {DEVNET_FILE} is")
    down.set_defaults(handler=_down)


def _up(namespace: argparse.Namespace) -> int:
    try:
        devnet = devnet_up(namespace.dir, namespace.nodes)
    except ChainError as error:
        print(f"scnode devnet up: {error}", file=sys.stderr)
        return 1
    print(f"devnet up: {devnet.rpc_url} (anvil pid {devnet.anvil_pid})")
    print(f"adjudicator {devnet.adjudicator}, {len(devnet.nodes)} node accounts funded")
    print(f"wrote {namespace.dir / DEVNET_FILE}")
    return 0


def _down(namespace: argparse.Namespace) -> int:
    try:
        stopped = devnet_down(namespace.dir)
    except ChainError as error:
        print(f"scnode devnet down: {error}", file=sys.stderr)
        return 1
    print("devnet down" if stopped else "devnet was not running; removed its file")
    return 0
