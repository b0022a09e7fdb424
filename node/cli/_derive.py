"""``scnode derive``: print the state a module derives from a node's log, or check a module.

scnode derive --home DIR [--module FILE.wasm] [--at SEQ] [--archive FILE ...] [--json]
scnode derive check FILE.wasm [--golden DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from node.core import message_to_json
from node.core.errors import DeriveError, LogBusyError, LogError
from node.derive import (
    CheckResult,
    DeriveInstance,
    DeriveModule,
    Deriver,
    LogSource,
    Outcome,
    channel_views,
    check_module,
    instance_at,
)
from node.home import NodeHome
from node.log import EventLog, LogHistory
from node.proto import derive_pb2

PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_MODULE = PROJECT / "wasm" / "channels.wasm"
DEFAULT_GOLDEN = PROJECT / "tests" / "derive" / "golden"
CACHE_DIRECTORY = "derive-cache"


def register(subparsers: Any) -> None:
    """Add ``derive`` (and ``derive check``) to the scnode command line."""
    parser = subparsers.add_parser(
        "derive", help="print the state a derivation module derives from the log"
    )
    parser.add_argument("--home", type=Path, help="the node's home directory")
    parser.add_argument("--module", type=Path, default=DEFAULT_MODULE, help="a .wasm module")
    parser.add_argument("--at", type=int, default=None, help="the state as of this seq")
    parser.add_argument(
        "--archive",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an archive of the log's pruned prefix (repeat for several)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(handler=run_derive)
    commands = parser.add_subparsers(dest="derive_command", metavar="SUBCOMMAND")
    check = commands.add_parser("check", help="run the conformance suite against a module")
    check.add_argument("wasm", type=Path, help="the module to check")
    check.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN, help="golden cases")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.set_defaults(handler=run_check)


def run_derive(options: argparse.Namespace) -> int:
    console = Console()
    if options.home is None:
        console.print("scnode derive: --home DIR is required")
        return 2
    home = NodeHome(options.home)
    try:
        module = DeriveModule.from_file(options.module, cache_dir=home.root / CACHE_DIRECTORY)
        try:
            log = EventLog.open(home.log_path, create=False)
            writable = True
        except LogBusyError:
            log = EventLog.open(home.log_path, create=False, read_only=True)
            writable = False
        with log:
            source: LogSource = LogHistory.open(log, options.archive) if options.archive else log
            instance = _derived(module, source, options.at, writable=writable)
            report = _report(module, instance)
    except (DeriveError, LogError, ValueError, OSError) as error:
        console.print(f"scnode derive: {error}")
        return 1
    if options.json:
        print(json.dumps(report, indent=1))
    else:
        _print_report(console, report)
    return 0


def _derived(
    module: DeriveModule, log: LogSource, at: int | None, *, writable: bool
) -> DeriveInstance:
    if at is not None or not writable:
        instance, _ = instance_at(module, log, at)
        return instance
    deriver = Deriver(log, module)
    if deriver.catch_up() > 0:
        deriver.snapshot()  # the next run starts here
    return deriver.instance


def _ask(instance: DeriveInstance, query: derive_pb2.Query) -> dict[str, Any] | None:
    result = instance.query(query)
    if result.status != derive_pb2.QUERY_STATUS_OK:
        return None
    return message_to_json(result)


def _report(module: DeriveModule, instance: DeriveInstance) -> dict[str, Any]:
    report: dict[str, Any] = {"module": module.name, "sha256": module.sha256_hex}
    cursor = _ask(instance, derive_pb2.Query(get_cursor=derive_pb2.GetCursor()))
    report["cursor"] = int(cursor.get("cursor", {}).get("last_seq", 0)) if cursor else None
    totals = _ask(instance, derive_pb2.Query(get_totals=derive_pb2.GetTotals()))
    if totals is not None:
        report["totals"] = totals["totals"]
        report["channels"] = [message_to_json(view) for view in channel_views(instance)]
    parties = _ask(instance, derive_pb2.Query(list_counterparties=derive_pb2.ListCounterparties()))
    if parties is not None:
        report["counterparties"] = parties["counterparties"].get("counterparties", [])
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


def _print_report(console: Console, report: dict[str, Any]) -> None:
    console.print(
        f"module {report['module']} sha256 {report['sha256'][:16]}… cursor {report['cursor']}"
    )
    if "channels" in report:
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
        for view in report["channels"]:
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
        console.print(table)
        totals = report["totals"]
        console.print(
            f"records {totals.get('records', 0)}, channels {totals.get('channels', 0)}, "
            f"open {totals.get('open_channels', 0)}, vouchers {totals.get('vouchers', 0)}"
        )
    if "counterparties" in report:
        table = Table(title="payments by counterparty")
        for column in ("counterparty", "sent", "received", "payments"):
            table.add_column(column)
        for party in report["counterparties"]:
            table.add_row(
                _short(party.get("address")),
                _amount(party.get("sent")),
                _amount(party.get("received")),
                str(party.get("payments", 0)),
            )
        console.print(table)


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
        "query": result.query or "(log)",
        "outcome": result.outcome.value,
        "detail": result.detail,
    }


def _print_check(
    console: Console, module: DeriveModule, results: list[CheckResult], counts: dict[Outcome, int]
) -> None:
    table = Table(title=f"conformance of {module.name} ({module.sha256_hex[:16]}…)")
    for column in ("case", "log", "passed", "differ", "unsupported"):
        table.add_column(column)
    for case in dict.fromkeys(result.case for result in results):
        mine = [result for result in results if result.case == case]
        log = next((result for result in mine if not result.query), None)
        table.add_row(
            case,
            _styled(log.outcome) if log else "-",
            str(sum(r.outcome is Outcome.PASS for r in mine if r.query)),
            str(sum(r.outcome is Outcome.DIFFERS for r in mine if r.query)),
            str(sum(r.outcome is Outcome.UNSUPPORTED for r in mine)),
        )
    console.print(table)
    for result in results:
        if result.outcome is Outcome.DIFFERS:
            where = f"{result.case} / {result.query or 'log'}"
            console.print(f"[red]differs[/] {where}: {result.detail}")
    unsupported = sorted({r.query.split()[0] for r in results if r.outcome is Outcome.UNSUPPORTED})
    if unsupported:
        console.print(f"not offered by this module (another view): {', '.join(unsupported)}")
    console.print(
        f"{counts[Outcome.PASS]} passed, {counts[Outcome.DIFFERS]} differ, "
        f"{counts[Outcome.UNSUPPORTED]} unsupported"
    )


def _styled(outcome: Outcome) -> str:
    style = {Outcome.PASS: "green", Outcome.DIFFERS: "red", Outcome.UNSUPPORTED: "yellow"}
    return f"[{style[outcome]}]{outcome.value}[/]"
