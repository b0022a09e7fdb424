"""Read-only SQL over a node's views: ``scnode sql`` and the ``query_sql`` method.

Each query gets a fresh connection to an empty in-memory database with every
view's database attached under the view's name, read-only (``mode=ro``), so
``SELECT * FROM channels`` finds the table in whichever view has it and
``engine.channels`` names one. Four locks, each enough alone for writes:

* the files are opened read-only and ``PRAGMA query_only`` is on;
* an authorizer allows only what a SELECT needs (reading tables, functions but
  ``load_extension``, recursive CTEs and a few schema pragmas); ATTACH (which
  could create or read another file, as VACUUM INTO does), writes, temporary
  objects and transactions are refused before the statement runs;
* no more databases may be attached than the views (``SQLITE_LIMIT_ATTACHED``);
* a progress handler interrupts a query past its time limit, and strings and
  blobs a query builds are capped (``SQLITE_LIMIT_LENGTH``).

Answers hold at most ``views_sql_rows_max`` rows (``truncated`` says when more
matched); a BLOB is answered as ``"0x..."`` hex.
"""

from __future__ import annotations

import math
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from node.core.constants import (
    views_sql_answer_bytes_max,
    views_sql_length_bytes_max,
    views_sql_progress_steps,
    views_sql_rows_max,
    views_sql_text_bytes_max,
    views_sql_time_limit_ms,
    views_sql_time_limit_ms_max,
)
from node.core.errors import ScnodeError

JsonScalar = str | int | float | None
# Pragmas that only describe the schema.
READ_PRAGMAS: Final = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "database_list",
        "foreign_key_list",
    }
)
_ALLOWED: Final = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
_DENIED_FUNCTIONS: Final = frozenset({"load_extension", "fts3_tokenizer"})


class SqlError(ScnodeError):
    """The query was refused, failed, or ran out of time (the message says which)."""


@dataclass(frozen=True)
class SqlAnswer:
    columns: list[str]
    rows: list[list[JsonScalar]] = field(default_factory=list)
    truncated: bool = False

    def to_json(self) -> dict[str, object]:
        """The ``query_sql`` answer."""
        return {"columns": self.columns, "rows": self.rows, "truncated": self.truncated}


def _authorize(
    action: int, first: str | None, second: str | None, database: str | None, trigger: str | None
) -> int:
    """The authorizer: SELECTs and schema pragmas, nothing that writes or attaches."""
    if action in _ALLOWED:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if second in _DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and first in READ_PRAGMAS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _uri(path: Path) -> str:
    return f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"


def _u256_sum() -> type:
    """``u256_sum(x)``: the exact sum of decimal strings (UINT256 columns), as text."""

    class Sum:
        def __init__(self) -> None:
            self.total = 0

        def step(self, value: object) -> None:
            if isinstance(value, int):
                self.total += value
            elif isinstance(value, str) and value.isdigit() and len(value) <= 80:
                self.total += int(value)

        def finalize(self) -> str:
            return str(self.total)

    return Sum


@contextmanager
def _connection(databases: Mapping[str, Path]) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect("file::memory:", uri=True, isolation_level=None)
    try:
        for name, path in databases.items():
            connection.execute("ATTACH DATABASE ? AS ?", (_uri(path), name))
        connection.execute("PRAGMA query_only = 1")
        connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, len(databases))
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, views_sql_length_bytes_max)
        connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, views_sql_text_bytes_max)
        connection.create_aggregate("u256_sum", 1, _u256_sum())
        connection.set_authorizer(_authorize)
        yield connection
    finally:
        connection.close()


def _json_value(value: object) -> JsonScalar:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    assert value is None or isinstance(value, str | int | float), type(value)
    return value


def run_query(
    databases: Mapping[str, Path],
    sql: str,
    *,
    time_limit_ms: int = views_sql_time_limit_ms,
    rows_max: int = views_sql_rows_max,
) -> SqlAnswer:
    """Run one read-only statement over the views' databases (blocking).

    Args:
        databases: view name -> its database file (files that do not exist are left out).
        sql: one statement.
        time_limit_ms: interrupt the query after this long (1..``views_sql_time_limit_ms_max``).
        rows_max: answer at most this many rows.

    Raises:
        SqlError: the statement is refused, fails, or runs out of time.
    """
    if not 0 < time_limit_ms <= views_sql_time_limit_ms_max:
        raise SqlError(f"time_limit_ms {time_limit_ms} is outside 1..{views_sql_time_limit_ms_max}")
    assert rows_max > 0, rows_max
    if len(sql.encode()) > views_sql_text_bytes_max:
        raise SqlError(f"the query has more than {views_sql_text_bytes_max} bytes")
    present = {name: path for name, path in databases.items() if path.is_file()}
    deadline = time.monotonic() + time_limit_ms / 1000
    try:
        with _connection(present) as connection:
            connection.set_progress_handler(
                lambda: int(time.monotonic() > deadline), views_sql_progress_steps
            )
            cursor = connection.execute(sql)
            columns = [item[0] for item in cursor.description or ()]
            return _fetch(cursor, columns, rows_max)
    except sqlite3.Error as error:
        if time.monotonic() > deadline and "interrupted" in str(error):
            raise SqlError(f"the query ran past its time limit of {time_limit_ms} ms") from None
        raise SqlError(_explained(str(error))) from None
    except (sqlite3.Warning, OverflowError, ValueError) as error:
        raise SqlError(str(error)) from None


def _fetch(cursor: sqlite3.Cursor, columns: list[str], rows_max: int) -> SqlAnswer:
    rows: list[list[JsonScalar]] = []
    size = 0
    for chunk in iter(lambda: cursor.fetchmany(256), []):
        for values in chunk:
            converted = [_json_value(value) for value in values]
            size += sum(len(value) if isinstance(value, str) else 8 for value in converted)
            if len(rows) == rows_max or size > views_sql_answer_bytes_max:
                return SqlAnswer(columns, rows, truncated=True)
            rows.append(converted)
    return SqlAnswer(columns, rows)


def _explained(message: str) -> str:
    if message == "not authorized":
        return (
            "not authorized: views are read-only (one SELECT; no ATTACH, PRAGMA other than "
            f"{', '.join(sorted(READ_PRAGMAS))}, or load_extension)"
        )
    return message
