"""``scnode views``: list, add and remove a node's view modules.

scnode views list --home DIR [--json]
scnode views add FILE.wasm --home DIR [--name NAME]     (a running node, by JSON-RPC)
scnode views remove NAME --home DIR                     (a running node, by JSON-RPC)

``list`` asks the running node (state, errors, how far behind); without one, it
reads HOME/views.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from node.cli._common import fail, rpc_client
from node.core.errors import ScnodeError


def register(subparsers: Any) -> None:
    """Add ``views`` and its subcommands."""
    parser = subparsers.add_parser("views", help="list, add and remove view modules")
    commands = parser.add_subparsers(dest="views_command", metavar="SUBCOMMAND", required=True)
    listing = commands.add_parser("list", help="the views: module, state, cursor, tables")
    listing.add_argument("--home", required=True, type=Path, help="the node's home directory")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=list_command)
    add = commands.add_parser("add", help="add a view module to the running node")
    add.add_argument("wasm", type=Path, help="the module")
    add.add_argument("--home", required=True, type=Path, help="the node's home directory")
    add.add_argument("--name", help="the view's name (default: the file's name)")
    add.set_defaults(handler=add_command)
    remove = commands.add_parser("remove", help="stop a view and delete its database")
    remove.add_argument("name", help="the view's name")
    remove.add_argument("--home", required=True, type=Path, help="the node's home directory")
    remove.set_defaults(handler=remove_command)


def _running(home: Path) -> Any:
    """A client of the node running in ``home``, or None."""
    from node.rpc import RpcConnectionError

    try:
        client = rpc_client(home)
        client.call("version")
    except (ScnodeError, RpcConnectionError, OSError):
        return None
    return client


def list_command(namespace: argparse.Namespace) -> int:
    client = _running(namespace.home)
    try:
        views = client.call("list_views") if client is not None else _offline(namespace.home)
    except ScnodeError as error:
        return fail("views list", error)
    if namespace.json:
        print(json.dumps(views, indent=1))
        return 0
    table = Table(title="views" + ("" if client is not None else " (the node is not running)"))
    for column in ("view", "module sha256", "state", "cursor", "tables"):
        table.add_column(column, overflow="fold")
    for view in views:
        state = view.get("state") or "-"
        if view.get("error"):
            state = f"{state}: {view['error']}"
        table.add_row(
            view["name"] + (" (engine)" if view.get("engine") else ""),
            view["sha256"][:16] + "…",
            state,
            str(view.get("cursor")),
            ", ".join(table_info["name"] for table_info in view.get("tables", [])) or "-",
        )
    Console().print(table)
    return 0


def _offline(home: Path) -> list[dict[str, Any]]:
    """What HOME/views says of each view: its cursor and tables, from its database."""
    from node.home import NodeHome
    from node.views import ViewCatalog

    catalog = ViewCatalog(NodeHome(home).views_path)
    views = []
    for entry in catalog.entries():
        path = catalog.database_path(entry.name)
        cursor, tables = None, []
        if path.is_file():
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                cursor = connection.execute("SELECT cursor FROM scnode_view").fetchone()[0]
                tables = [
                    {"name": name}
                    for (name,) in connection.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table'"
                        " AND name NOT LIKE 'scnode_%' ORDER BY rowid"
                    )
                ]
            except sqlite3.Error:
                pass
            finally:
                connection.close()
        views.append(
            {
                "name": entry.name,
                "sha256": entry.sha256,
                "engine": entry.engine,
                "state": None,
                "cursor": cursor,
                "tables": tables,
            }
        )
    return views


def add_command(namespace: argparse.Namespace) -> int:
    from node.rpc import RpcConnectionError, RpcError
    from node.views import view_name_of

    try:
        wasm = namespace.wasm.read_bytes()
    except OSError as error:
        return fail("views add", ScnodeError(f"{namespace.wasm}: {error.strerror}"))
    name = namespace.name or view_name_of(namespace.wasm)
    try:
        view = rpc_client(namespace.home).call("add_view", name=name, wasm="0x" + wasm.hex())
    except (ScnodeError, RpcError, RpcConnectionError) as error:
        return fail("views add", error)
    print(
        f"view {view['name']} added: module sha256 {view['sha256']}, {view['state']};"
        f" tables {', '.join(t['name'] for t in view['tables']) or '(none)'}"
    )
    return 0


def remove_command(namespace: argparse.Namespace) -> int:
    from node.rpc import RpcConnectionError, RpcError

    try:
        rpc_client(namespace.home).call("remove_view", name=namespace.name)
    except (ScnodeError, RpcError, RpcConnectionError) as error:
        return fail("views remove", error)
    print(f"view {namespace.name} removed")
    return 0
