"""``scnode sql``: one read-only SQL statement over a node's views.

scnode sql --home DIR [--json | --csv] [--time-limit-ms MS] "SELECT ..."

It reads the views' SQLite databases in HOME/views directly, read-only, beside a
running node or without one (the tables are then as of the node's last step).
Every view's tables are there under the view's name (``engine.channels``) and,
when no other view has a table of that name, by the table's name alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from node.core.constants import views_sql_time_limit_ms, views_sql_time_limit_ms_max


def _time_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not 0 < value <= views_sql_time_limit_ms_max:
        raise argparse.ArgumentTypeError(f"{value}: give 1 to {views_sql_time_limit_ms_max} ms")
    return value


def register(subparsers: Any) -> None:
    """Add ``sql``."""
    parser = subparsers.add_parser("sql", help="one read-only SQL statement over the views' tables")
    parser.add_argument("query", help='one statement, e.g. "SELECT * FROM channels"')
    parser.add_argument("--home", required=True, type=Path, help="the node's home directory")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help='{"columns", "rows", "truncated"}')
    output.add_argument("--csv", action="store_true", help="CSV with a header line")
    parser.add_argument(
        "--time-limit-ms",
        type=_time_limit,
        default=views_sql_time_limit_ms,
        help=f"interrupt the query after this long (default {views_sql_time_limit_ms})",
    )
    parser.set_defaults(handler=sql_command)


def sql_command(namespace: argparse.Namespace) -> int:
    """Run the statement; print its rows."""
    from node.home import NodeHome
    from node.views import SqlError, ViewCatalog, ViewError, run_query

    catalog = ViewCatalog(NodeHome(namespace.home).views_path)
    try:
        names = [entry.name for entry in catalog.entries()]
        databases = {name: catalog.database_path(name) for name in names}
        if not any(path.is_file() for path in databases.values()):
            raise ViewError(
                f"no views in {catalog.root}: run the node (its module's tables are the view"
                " `engine`), or add one with `scnode run --view FILE.wasm`"
            )
        answer = run_query(databases, namespace.query, time_limit_ms=namespace.time_limit_ms)
    except (SqlError, ViewError) as error:
        print(f"scnode sql: {error}", file=sys.stderr)
        return 1
    if namespace.json:
        print(json.dumps(answer.to_json()))
    elif namespace.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(answer.columns)
        writer.writerows(["" if value is None else value for value in row] for row in answer.rows)
    else:
        _print_table(answer.columns, answer.rows, answer.truncated)
    return 0


def _print_table(columns: list[str], rows: list[list[Any]], truncated: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("NULL" if value is None else str(value) for value in row))
    console = Console()
    console.print(table)
    more = " (truncated: more rows matched)" if truncated else ""
    console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}{more}")
