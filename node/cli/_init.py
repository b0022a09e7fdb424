"""``scnode init``: a node's home directory and key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``init``."""
    init = subparsers.add_parser("init", help="create a node's home directory and key")
    init.add_argument("--home", required=True, type=Path, help="the node's home directory")
    init.add_argument(
        "--key-file",
        type=Path,
        help="import this hex private key instead of generating one (e.g. a devnet account)",
    )
    init.set_defaults(handler=init_command)


def init_command(namespace: argparse.Namespace) -> int:
    """Create the home directory and its node key (generated, or read from --key-file)."""
    from node.core import Signer
    from node.home import HomeError, NodeHome, read_private_key

    home = NodeHome(namespace.home)
    try:
        key = read_private_key(namespace.key_file) if namespace.key_file else None
        home.initialise(node_key=key)
        address = Signer(home.node_key()).address
    except HomeError as error:
        print(f"scnode init: {error}", file=sys.stderr)
        return 1
    print(f"initialised {home.root}")
    print(f"node address {address}")
    return 0
