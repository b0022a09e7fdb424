"""``scnode log show``, ``scnode log verify`` and ``scnode log archive``.

``show`` and ``verify`` open the log read-only, so they work beside a running node;
with ``--archive FILE`` they also read the archives of a pruned prefix.
``archive`` (``node/cli/_archive.py``) needs the node stopped.
Exit codes: 0 fine, 1 the log is broken (or the archive refused), 2 the log could
not be opened.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from google.protobuf.message import DecodeError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from node.cli._archive import add_parser as add_archive_parser
from node.core import message_to_json
from node.core.errors import InvalidValueError, LogCorruptError, LogError
from node.home import NodeHome
from node.log import (
    EventLog,
    LogHistory,
    VerifyReport,
    kind_name,
    record_hash,
    short_hex,
    summarise,
)
from node.proto import log_pb2

EXIT_OK: Final = 0
EXIT_BROKEN: Final = 1
EXIT_UNAVAILABLE: Final = 2
_TABLE_ROWS_MAX: Final = 1000  # rows per rendered table, so memory stays bounded
_PIPED_WIDTH: Final = 160


def register(subparsers: Any) -> None:
    """Add ``log show``, ``log verify`` and ``log archive`` to the ``scnode`` parser."""
    log_parser = subparsers.add_parser("log", help="inspect and check the event log")
    log_parser.set_defaults(handler=lambda _: _print_help(log_parser))
    commands = log_parser.add_subparsers(dest="log_command", metavar="SUBCOMMAND")

    show = commands.add_parser("show", help="list records")
    _add_home(show)
    show.add_argument(
        "--from", dest="from_seq", type=int, default=None, metavar="N", help="default: the first"
    )
    show.add_argument("--to", dest="to_seq", type=int, default=None, metavar="N")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    add_archive_option(show)
    show.set_defaults(handler=run_show)

    verify = commands.add_parser("verify", help="check the hash chain and the head")
    _add_home(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    add_archive_option(verify)
    verify.set_defaults(handler=run_verify)

    add_archive_parser(commands, _add_home)


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, required=True, help="the node's home directory")


def add_archive_option(parser: argparse.ArgumentParser) -> None:
    """``--archive FILE``: an archive of the log's pruned prefix, repeatable."""
    parser.add_argument(
        "--archive",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an archive of the pruned prefix (repeat for several, in any order)",
    )


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_UNAVAILABLE


def _open(namespace: argparse.Namespace) -> EventLog | None:
    try:
        return EventLog.open(NodeHome(namespace.home).log_path, read_only=True)
    except LogError as error:
        _print_error("error", error)
        return None


def _print_error(label: str, error: Exception) -> None:
    Console(stderr=True, highlight=False).print(
        f"[red]{label}:[/red] {escape(str(error))}", soft_wrap=True
    )


def run_show(namespace: argparse.Namespace) -> int:
    """List records ``--from..--to`` as a table, or as JSON lines."""
    log = _open(namespace)
    if log is None:
        return EXIT_UNAVAILABLE
    with log:
        try:
            source = LogHistory.open(log, namespace.archive) if namespace.archive else log
            first = source.first_seq if namespace.from_seq is None else namespace.from_seq
            rows = source.read_raw(first, namespace.to_seq)
            if namespace.json:
                for seq, value in rows:
                    sys.stdout.write(json.dumps(record_json(seq, value)) + "\n")
            else:
                _print_tables(rows)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (``scnode log show | head``): stop quietly.
            _silence_stdout()
            return EXIT_OK
        except (InvalidValueError, OSError) as error:
            _print_error("error", error)
            return EXIT_UNAVAILABLE
        except LogCorruptError as error:
            _print_error("broken", error)
            return EXIT_BROKEN
        except LogError as error:  # records asked for were pruned
            _print_error("error", error)
            return EXIT_UNAVAILABLE
    return EXIT_OK


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does
    not raise BrokenPipeError again (the Python docs' recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


class _PipeConsole(Console):
    """A console that lets BrokenPipeError through (rich's own exits with status 1)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _print_tables(rows: Iterator[tuple[int, bytes]]) -> None:
    console = _PipeConsole(highlight=False)
    if not console.is_terminal:
        # Piped output has no width to fit: do not squeeze the columns to 80.
        console.width = max(console.width, _PIPED_WIDTH)
    table = _new_table(show_header=True)
    for seq, value in rows:
        record = _parse(seq, value)
        table.add_row(
            str(seq),
            kind_name(record.kind),
            format_time(record.time_ms),
            short_hex(record.prev_hash),
            Text(summarise(record), no_wrap=True, overflow="ellipsis"),
        )
        if table.row_count == _TABLE_ROWS_MAX:
            console.print(table)
            table = _new_table(show_header=False)
    if table.row_count or table.show_header:
        console.print(table)


def _new_table(*, show_header: bool) -> Table:
    table = Table(show_header=show_header, box=None, pad_edge=False)
    table.add_column("seq", justify="right", min_width=6, no_wrap=True)
    table.add_column("kind", min_width=21, no_wrap=True)
    table.add_column("time (UTC)", min_width=23, no_wrap=True)
    table.add_column("prev", min_width=11, no_wrap=True)
    # Wrappable, so rich narrows it instead of dropping columns; each cell is cut to one line.
    table.add_column("summary", min_width=20)
    return table


def _parse(seq: int, value: bytes) -> log_pb2.LogRecord:
    try:
        return log_pb2.LogRecord.FromString(value)
    except DecodeError as error:
        raise LogCorruptError(seq, f"does not parse as a LogRecord ({error})") from None


def format_time(time_ms: int) -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DD HH:MM:SS.mmm`` (UTC), ``-`` if 0."""
    if time_ms == 0:
        return "-"
    try:
        moment = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return f"{time_ms} ms"
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{time_ms % 1000:03d}"


def record_json(seq: int, value: bytes) -> dict[str, Any]:
    """A stored record as a JSON-ready dict: bytes as 0x-hex, amounts as decimal strings."""
    record = _parse(seq, value)
    case = record.WhichOneof("payload")
    payload = getattr(record, case) if case is not None else None
    return {
        "seq": record.seq,
        "kind": kind_name(record.kind),
        "time_ms": record.time_ms,
        "prev_hash": record.prev_hash.hex(),
        "hash": record_hash(value).hex(),
        "payload_case": case,
        "payload": message_to_json(payload) if payload is not None else None,
    }


def run_verify(namespace: argparse.Namespace) -> int:
    """Walk the chain (the archives given, then the live log from its checkpoint); print
    OK with the head, or the first broken record."""
    log = _open(namespace)
    if log is None:
        return EXIT_UNAVAILABLE
    with log:
        try:
            document = verify_history(log, namespace.archive)
        except OSError as error:
            _print_error("error", error)
            return EXIT_UNAVAILABLE
    _print_verify(document, as_json=namespace.json)
    return EXIT_OK if document["ok"] else EXIT_BROKEN


def verify_history(log: EventLog, archives: list[Path]) -> dict[str, Any]:
    """Verify each archive (which must chain up to the live log's checkpoint), then the
    live log from its checkpoint; the outcome as a JSON-ready document.

    Raises:
        OSError: an archive cannot be read.
    """
    try:
        history = LogHistory.open(log, archives)
    except InvalidValueError as error:
        return _verify_document(
            log, log.first_seq, VerifyReport(False, 0, log.first_seq, str(error)), 0
        )
    checked = 0
    for archive in history.archives:
        report = archive.verify()
        if not report.ok:
            return _verify_document(log, history.first_seq, report, checked)
        checked += report.records_checked
    return _verify_document(log, history.first_seq, log.verify(), checked)


def _verify_document(
    log: EventLog, first_seq: int, report: VerifyReport, checked_before: int
) -> dict[str, Any]:
    checkpoint_seq, checkpoint_hash = log.checkpoint
    checkpoint = {"seq": checkpoint_seq, "hash": checkpoint_hash.hex()} if checkpoint_seq else None
    return {
        "ok": report.ok,
        "records_checked": checked_before + report.records_checked,
        "first_bad_seq": report.first_bad_seq,
        "problem": report.problem,
        "first_seq": first_seq,
        "last_seq": log.last_seq,
        "head_hash": log.head_hash.hex(),
        "checkpoint": checkpoint,
    }


def _print_verify(document: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(document) + "\n")
        return
    console = Console(highlight=False)
    if not document["ok"]:
        console.print(
            f"BROKEN: record {document['first_bad_seq']}: {document['problem']} "
            f"({document['records_checked']} records checked before it)",
            soft_wrap=True,
        )
        return
    checkpoint = document["checkpoint"]
    if checkpoint is None:
        where = ""
    elif document["first_seq"] > checkpoint["seq"]:
        where = (
            f" from the checkpoint at record {checkpoint['seq']} (hash"
            f" {checkpoint['hash']}; records 1..{checkpoint['seq']} are archived)"
        )
    else:
        where = f" from record {document['first_seq']} (archives, then the live log)"
    console.print(
        f"OK: {document['records_checked']} records checked{where}, "
        f"head seq {document['last_seq']} hash {document['head_hash']}",
        soft_wrap=True,
    )
