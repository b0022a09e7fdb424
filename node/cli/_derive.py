"""``scnode derive``: print the state a module derives from a node's log, or check a module.

scnode derive --home DIR [--module FILE.wasm] [--at SEQ] [--archive FILE ...] [--table NAME]
              [--rows N] [--json]
scnode derive check FILE.wasm [--golden DIR] [--json]

A module with tables (the tables extension) is shown as its tables; a module
without them by the queries it answers (cursor, totals and channels, payments
by counterparty), with the reason of any it declines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from node.cli._log import add_archive_option
from node.core import message_to_json
from node.core.errors import DeriveError, LogBusyError, LogError
from node.derive import (
    CheckKind,
    CheckResult,
    DeriveInstance,
    DeriveModule,
    Deriver,
    LogSource,
    Outcome,
    channel_views,
    check_module,
    instance_at,
    tables_at,
)
from node.home import NodeHome
from node.log import EventLog, LogHistory
from node.proto import derive_pb2

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_MODULE = PROJECT / "wasm" / "channels.wasm"
DEFAULT_GOLDEN = PROJECT / "tests" / "derive" / "golden"
CACHE_DIRECTORY = "derive-cache"
_ROWS_SHOWN_DEFAULT = 20
_WIDE_COLUMNS = 6  # a table with more columns is shown a row per column of the output
_HEX_SHOWN_MAX = 18
_TURNED_ROWS = 3  # rows side by side in a turned table


def _sequence_number(text: str) -> int:
    """``--at``: a record's sequence number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a sequence number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: a sequence number is 0 or more")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value}: give 1 or more")
    return value


def register(subparsers: Any) -> None:
    """Add ``derive`` (and ``derive check``) to the scnode command line."""
    parser = subparsers.add_parser(
        "derive", help="print the state a derivation module derives from the log"
    )
    parser.add_argument("--home", type=Path, help="the node's home directory")
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE, help="a .wasm module")
    parser.add_argument(
        "--at", type=_sequence_number, default=None, help="the state as of this seq"
    )
    add_archive_option(parser)
    parser.add_argument("--table", help="show only this table (a module with tables)")
    parser.add_argument(
        "--rows",
        type=_positive,
        default=_ROWS_SHOWN_DEFAULT,
        help=f"rows shown per table (default {_ROWS_SHOWN_DEFAULT}; --json shows all)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=run_derive, parser=parser)
    commands = parser.add_subparsers(dest="derive_command", metavar="SUBCOMMAND")
    check = commands.add_parser("check", help="run the conformance suite against a module")
    check.add_argument("wasm", type=Path, help="the module to check")
    check.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN, help="golden cases")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.set_defaults(handler=run_check)


def run_derive(options: argparse.Namespace) -> int:
    console = Console()
    parser: argparse.ArgumentParser = options.parser
    if options.home is None:
        parser.print_usage(sys.stderr)
        console.print("scnode derive: --home DIR is required")
        return 2
    home = NodeHome(options.home)
    try:
        module = DeriveModule.from_file(options.module, cache_dir=home.root / CACHE_DIRECTORY)
        names = [table.name for table in module.schema.tables] if module.schema else []
        if options.table is not None and options.table not in names:
            parser.print_usage(sys.stderr)
            console.print(
                f"scnode derive: --table {options.table}: {module.name} has tables "
                f"{', '.join(names) or '(none)'}"
            )
            return 2
        with _open_log(home) as (log, writable):
            source: LogSource = LogHistory.open(log, options.archive) if options.archive else log
            if options.at is not None and options.at > log.last_seq:
                parser.print_usage(sys.stderr)
                console.print(f"scnode derive: --at {options.at}: the log ends at {log.last_seq}")
                return 2
            report = _report(module, log, source, options, writable=writable)
    except (DeriveError, LogError, ValueError, OSError) as error:
        console.print(f"scnode derive: {error}")
        return 1
    if options.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(console, report, options.rows)
    return 0


class _open_log:
    """The node's log, read-write when no node holds it (then snapshots are kept for
    the next run), else read-only."""

    def __init__(self, home: NodeHome) -> None:
        self.home = home
        self.log: EventLog | None = None

    def __enter__(self) -> tuple[EventLog, bool]:
        try:
            self.log = EventLog.open(self.home.log_path, create=False)
            return self.log, True
        except LogBusyError:
            self.log = EventLog.open(self.home.log_path, create=False, read_only=True)
            return self.log, False

    def __exit__(self, *exc: object) -> None:
        if self.log is not None:
            self.log.close()


def _report(
    module: DeriveModule,
    log: EventLog,
    source: LogSource,
    options: argparse.Namespace,
    *,
    writable: bool,
) -> dict[str, Any]:
    """What ``module`` derives from ``source`` (the log, or the log after its archives)."""
    if options.at is None and writable:
        deriver = Deriver(log, module)
        if deriver.catch_up() > 0:
            deriver.snapshot()  # the next run (and the tables below) start here
    report: dict[str, Any] = {"module": module.name, "sha256": module.sha256_hex}
    if module.schema is not None:
        instance, cursor, tables = tables_at(module, source, options.at)
        rows = tables.rows()
        report["tables"] = {
            table.name: {
                "columns": [column.name for column in table.columns],
                "rows": sorted((list(map(_json_value, row)) for row in rows[table.name]), key=str),
            }
            for table in module.schema.tables
            if options.table in (None, table.name)
        }
    else:
        instance, cursor = instance_at(module, source, options.at)
    report["at"] = cursor
    report.update(_answers(instance))
    return report


def _json_value(value: object) -> object:
    return "0x" + value.hex() if isinstance(value, bytes) else value


def _ask(
    instance: DeriveInstance, query: derive_pb2.Query, result: str
) -> tuple[dict[str, Any] | None, str]:
    """The answer as JSON (its ``result`` part), or None and why the module gave none."""
    answer = instance.query(query)
    if answer.status != derive_pb2.QUERY_STATUS_OK:
        return None, answer.detail or derive_pb2.QueryStatus.Name(answer.status)
    if answer.WhichOneof("result") != result:
        return None, f"answered {answer.WhichOneof('result') or 'nothing'}, not {result}"
    found: dict[str, Any] = message_to_json(answer).get(result, {})
    return found, ""


def _answers(instance: DeriveInstance) -> dict[str, Any]:
    """What the module answers of the queries in derive.proto; ``declined`` says why not."""
    report: dict[str, Any] = {}
    declined: dict[str, str] = {}
    cursor, why = _ask(instance, derive_pb2.Query(get_cursor=derive_pb2.GetCursor()), "cursor")
    report["cursor"] = int(cursor.get("last_seq", 0)) if cursor is not None else None
    if cursor is None:
        declined["get_cursor"] = why
    totals, why = _ask(instance, derive_pb2.Query(get_totals=derive_pb2.GetTotals()), "totals")
    if totals is not None:
        report["totals"] = totals
        try:
            report["channels"] = [message_to_json(view) for view in channel_views(instance)]
        except DeriveError as error:
            declined["list_channels"] = str(error)
    else:
        declined["get_totals"] = why
    query = derive_pb2.Query(list_counterparties=derive_pb2.ListCounterparties())
    parties, why = _ask(instance, query, "counterparties")
    if parties is not None:
        report["counterparties"] = parties.get("counterparties", [])
    else:
        declined["list_counterparties"] = why
    report["declined"] = declined
    return report


def _amount(value: str | None) -> str:
    """A uint256 as message_to_json writes it (a decimal string), or 0 when unset."""
    return value or "0"


def _short(value: str | None) -> str:
    return (value or "0x")[:14]


def _holding(holding: dict[str, str]) -> str:
    """``amount`` for the native coin, ``0xasset…=amount`` for a token."""
    amount = _amount(holding.get("amount"))
    asset = bytes.fromhex(holding.get("asset", "0x")[2:])
    return amount if not any(asset) else f"{_short(holding.get('asset'))}={amount}"


def _print_report(console: Console, report: dict[str, Any], rows_shown: int) -> None:
    console.print(
        f"module {report['module']} sha256 {report['sha256'][:16]}… at {report['at']},"
        f" cursor {report['cursor']}"
    )
    if "tables" in report:
        for name, table in report["tables"].items():
            for block in _tables_of(name, table, rows_shown):
                console.print(block)
    elif "channels" in report:
        console.print(_channels_table(report["channels"]))
    if "totals" in report:
        totals = report["totals"]
        console.print(
            f"records {totals.get('records', 0)}, channels {totals.get('channels', 0)}, "
            f"open {totals.get('open_channels', 0)}, vouchers {totals.get('vouchers', 0)}"
        )
    if "counterparties" in report and "tables" not in report:
        console.print(_counterparties_table(report["counterparties"]))
    if "tables" not in report:
        for query, why in report["declined"].items():
            console.print(f"{query}: declined: {why}", soft_wrap=True)


def _tables_of(name: str, table: dict[str, Any], rows_shown: int) -> list[Table]:
    """A table with few columns as such; a wider one turned (a column per line, a few
    rows side by side per block). Long hex values are shortened (``--json`` and
    ``scnode sql`` show them whole)."""
    columns, rows = table["columns"], table["rows"][:rows_shown]
    title = f"{name} ({len(table['rows'])} rows)"
    if len(columns) <= _WIDE_COLUMNS:
        shown = Table(title=title)
        for column in columns:
            shown.add_column(column, no_wrap=True)
        for row in rows:
            shown.add_row(*map(_cell, row))
        blocks = [shown]
    else:
        blocks = []
        for start in range(0, max(len(rows), 1), _TURNED_ROWS):
            shown = Table(title=title if start == 0 else None)
            shown.add_column("column", no_wrap=True)
            block = rows[start : start + _TURNED_ROWS]
            for number in range(start, start + len(block)):
                shown.add_column(f"row {number + 1}", no_wrap=True)
            for index, column in enumerate(columns):
                shown.add_row(column, *(_cell(row[index]) for row in block))
            blocks.append(shown)
    if len(table["rows"]) > rows_shown:
        more = len(table["rows"]) - rows_shown
        blocks[-1].caption = f"{more} more rows: --rows N, --json or scnode sql"
    return blocks


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    text = str(value)
    if text.startswith("0x") and len(text) > _HEX_SHOWN_MAX:
        return f"{text[:10]}…{text[-4:]}"
    return text


def _channels_table(channels: list[dict[str, Any]]) -> Table:
    table = Table(title="channels")
    for column in (
        "channel",
        "status",
        "parties",
        "supported turn",
        "holdings",
        "paid",
        "received",
        "last seq",
    ):
        table.add_column(column)
    for view in channels:
        supported = view.get("supported", {}).get("state", {})
        holdings = ", ".join(_holding(h) for h in view.get("holdings", []))
        table.add_row(
            _short(view.get("channel_id")),
            view.get("status", "").removeprefix("CHANNEL_STATUS_").lower(),
            str(len(view.get("fixed", {}).get("participants", []))),
            str(supported.get("turn_num", "-" if not supported else 0)),
            holdings or "-",
            _amount(view.get("paid")),
            _amount(view.get("received")),
            str(view.get("last_seq", 0)),
        )
    return table


def _counterparties_table(parties: list[dict[str, Any]]) -> Table:
    table = Table(title="payments by counterparty")
    for column in ("counterparty", "sent", "received", "payments"):
        table.add_column(column)
    for party in parties:
        table.add_row(
            _short(party.get("address")),
            _amount(party.get("sent")),
            _amount(party.get("received")),
            str(party.get("payments", 0)),
        )
    return table


def run_check(options: argparse.Namespace) -> int:
    console = Console()
    try:
        module = DeriveModule.from_file(options.wasm)
        results = check_module(module, options.golden)
    except (DeriveError, OSError, ValueError) as error:
        console.print(f"scnode derive check: {error}")
        return 1
    counts = {outcome: sum(r.outcome is outcome for r in results) for outcome in Outcome}
    if options.json:
        print(
            json.dumps(
                {
                    "module": module.name,
                    "sha256": module.sha256_hex,
                    "tables": module.has_tables,
                    "counts": {outcome.value: count for outcome, count in counts.items()},
                    "results": [_result_dict(result) for result in results],
                },
                indent=1,
            )
        )
    else:
        _print_check(console, module, results, counts)
    ok = counts[Outcome.DIFFERS] == 0 and counts[Outcome.PASS] > 0
    return 0 if ok else 1


def _result_dict(result: CheckResult) -> dict[str, str]:
    return {
        "case": result.case,
        "kind": result.kind.value,
        "query": result.query or "(log)",
        "outcome": result.outcome.value,
        "detail": result.detail,
    }


def _passed_of(results: list[CheckResult], kind: CheckKind) -> str:
    mine = [result for result in results if result.kind is kind]
    if not mine:
        return "-"
    passed = sum(result.outcome is Outcome.PASS for result in mine)
    text = f"{passed}/{len(mine)}"
    return f"[green]{text}[/]" if passed == len(mine) else f"[red]{text}[/]"


def _print_check(
    console: Console, module: DeriveModule, results: list[CheckResult], counts: dict[Outcome, int]
) -> None:
    table = Table(title=f"conformance of {module.name} ({module.sha256_hex[:16]}…)")
    for column in ("case", "log", "passed", "differ", "unsupported", "snapshots", "tables"):
        table.add_column(column)
    for case in dict.fromkeys(result.case for result in results):
        mine = [result for result in results if result.case == case]
        log = next((result for result in mine if result.kind is CheckKind.LOG), None)
        queries = [result for result in mine if result.kind is CheckKind.QUERY]
        table.add_row(
            case,
            _styled(log.outcome) if log else "-",
            str(sum(r.outcome is Outcome.PASS for r in queries)),
            str(sum(r.outcome is Outcome.DIFFERS for r in queries)),
            str(sum(r.outcome is Outcome.UNSUPPORTED for r in queries)),
            _passed_of(mine, CheckKind.SNAPSHOT),
            _passed_of(mine, CheckKind.TABLES),
        )
    console.print(table)
    for result in results:
        if result.outcome is Outcome.DIFFERS:
            where = f"{result.case} / {result.query or 'log'}"
            console.print(f"[red]differs[/] {where}: {result.detail}", soft_wrap=True)
    unsupported = sorted({r.query.split()[0] for r in results if r.outcome is Outcome.UNSUPPORTED})
    if unsupported:
        console.print(f"not offered by this module (another view): {', '.join(unsupported)}")
    if not module.has_tables:
        console.print("no tables: the module does not export describe_tables")
    console.print(
        f"{counts[Outcome.PASS]} passed, {counts[Outcome.DIFFERS]} differ, "
        f"{counts[Outcome.UNSUPPORTED]} unsupported"
    )


def _styled(outcome: Outcome) -> str:
    style = {Outcome.PASS: "green", Outcome.DIFFERS: "red", Outcome.UNSUPPORTED: "yellow"}
    return f"[{style[outcome]}]{outcome.value}[/]"
