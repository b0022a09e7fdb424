"""``scnode dashboard --home DIR``: the URL of the running node's web dashboard.

The URL carries the node's RPC token (HOME/rpc.token): whoever has it can use the
node's API, so it is printed, never opened for you or logged. The node serves the
page on its JSON-RPC address, loopback only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import quote

from node.cli._common import fail
from node.core.errors import ScnodeError


def register(subparsers: Any) -> None:
    """Add the ``dashboard`` subcommand."""
    parser = subparsers.add_parser(
        "dashboard", help="print the URL of the running node's web dashboard"
    )
    parser.add_argument("--home", required=True, type=Path, help="the node's home directory")
    parser.set_defaults(handler=dashboard_command)


def dashboard_url(home: Path) -> str:
    """The dashboard's URL, token included, of the node running in ``home``.

    Raises:
        ScnodeError: no node runs there, or its token cannot be read.
    """
    from node.engine import read_rpc_url
    from node.home import NodeHome
    from node.rpc import load_rpc_token

    node_home = NodeHome(home)
    return f"{read_rpc_url(node_home)}/dashboard?token={quote(load_rpc_token(node_home))}"


def dashboard_command(namespace: argparse.Namespace) -> int:
    """Print the URL to open in a browser."""
    try:
        print(dashboard_url(namespace.home))
    except (ScnodeError, OSError) as error:
        return fail("dashboard", error)
    return 0
