"""``scnode log show`` and ``scnode log verify``.

Both open the log read-only, so they work beside a running node.
Exit codes: 0 fine, 1 the log is broken, 2 the log could not be opened.
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

from node.core import message_to_json
from node.core.errors import InvalidValueError, LogCorruptError, LogError
from node.home import NodeHome
from node.log import EventLog, kind_name, record_hash, short_hex, summarise
from node.proto import log_pb2

EXIT_OK: Final = 0
EXIT_BROKEN: Final = 1
EXIT_UNAVAILABLE: Final = 2
_TABLE_ROWS_MAX: Final = 1000  # rows per rendered table, so memory stays bounded
_PIPED_WIDTH: Final = 160


def register(subparsers: Any) -> None:
    """Add ``log show`` and ``log verify`` to the ``scnode`` parser."""
    log_parser = subparsers.add_parser("log", help="inspect and check the event log")
    log_parser.set_defaults(handler=lambda _: _print_help(log_parser))
    commands = log_parser.add_subparsers(dest="log_command", metavar="SUBCOMMAND")

    show = commands.add_parser("show", help="list records")
    _add_home(show)
    show.add_argument("--from", dest="from_seq", type=int, default=1, metavar="N")
    show.add_argument("--to", dest="to_seq", type=int, default=None, metavar="N")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    show.set_defaults(handler=run_show)

    verify = commands.add_parser("verify", help="check the hash chain and the head")
    _add_home(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(handler=run_verify)


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, required=True, help="the node's home directory")


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
            rows = log.read_raw(namespace.from_seq, namespace.to_seq)
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
        except InvalidValueError as error:
            _print_error("error", error)
            return EXIT_UNAVAILABLE
        except LogCorruptError as error:
            _print_error("broken", error)
            return EXIT_BROKEN
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
    """Walk the chain; print OK with the head, or the first broken record."""
    log = _open(namespace)
    if log is None:
        return EXIT_UNAVAILABLE
    with log:
        report = log.verify()
        last_seq, head_hash = log.last_seq, log.head_hash
    if namespace.json:
        document = {
            "ok": report.ok,
            "records_checked": report.records_checked,
            "first_bad_seq": report.first_bad_seq,
            "problem": report.problem,
            "last_seq": last_seq,
            "head_hash": head_hash.hex(),
        }
        sys.stdout.write(json.dumps(document) + "\n")
    elif report.ok:
        Console(highlight=False).print(
            f"OK: {report.records_checked} records checked, "
            f"head seq {last_seq} hash {head_hash.hex()}",
            soft_wrap=True,
        )
    else:
        Console(highlight=False).print(
            f"BROKEN: record {report.first_bad_seq}: {report.problem} "
            f"({report.records_checked} records checked before it)",
            soft_wrap=True,
        )
    return EXIT_OK if report.ok else EXIT_BROKEN
