"""One view's SQLite database: the module's tables, its cursor and its snapshot.

The tables a module describes are created as STRICT, WITHOUT ROWID tables keyed
by its primary key. Beside them, two tables of the host's own (the ``scnode_``
prefix is reserved): ``scnode_view``, one row with the module's sha256, its
schema and the cursor (the last record whose changes the tables hold), and
``scnode_snapshot``, the module's latest snapshot. Row changes, the cursor and a
snapshot are written in one transaction, so after a crash the tables and the
cursor agree; the module is restored from the snapshot and replays to the cursor
(docs/adr/0009-views.md). Written by one thread at a time; read by any number of
read-only connections beside it (WAL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from node.derive import SQL_TYPES, Change, Schema, TableSpec

FORMAT: Final = 1  # of the host's own tables; another value rebuilds the database
META_TABLE: Final = "scnode_view"
SNAPSHOT_TABLE: Final = "scnode_snapshot"


def quoted(name: str) -> str:
    """A SQL identifier (names are checked [a-z][a-z0-9_]*, so this never escapes)."""
    assert name.replace("_", "").isalnum(), name
    assert '"' not in name, name
    return f'"{name}"'


def table_ddl(table: TableSpec) -> str:
    columns = [f"{quoted(column.name)} {SQL_TYPES[column.type]}" for column in table.columns]
    key = ", ".join(quoted(name) for name in table.key_names)
    return (
        f"CREATE TABLE {quoted(table.name)} ({', '.join(columns)}, PRIMARY KEY ({key}))"
        " STRICT, WITHOUT ROWID"
    )


class ViewDatabase:
    """The database of one view; ``open`` rebuilds it empty when it belongs to another
    module (or schema, or format)."""

    def __init__(self, connection: sqlite3.Connection, path: Path, schema: Schema) -> None:
        self._connection = connection
        self.path = path
        self.schema = schema
        self._upserts = [
            f"INSERT OR REPLACE INTO {quoted(table.name)} VALUES "
            f"({', '.join('?' * len(table.columns))})"
            for table in schema.tables
        ]
        self._deletes = [
            [
                f"DELETE FROM {quoted(table.name)} WHERE "
                + " AND ".join(f"{quoted(name)} = ?" for name in table.key_names[:length])
                for length in range(1, len(table.primary_key) + 1)
            ]
            for table in schema.tables
        ]

    @classmethod
    def open(cls, path: Path, *, sha256: str, schema: Schema) -> ViewDatabase:
        """Open (or create) the database of a view of module ``sha256``.

        Raises:
            sqlite3.Error: the file cannot be opened or written.
        """
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL loses at most the last transactions on a power cut, never
            # consistency: the cursor goes back with the rows.
            connection.execute("PRAGMA synchronous = NORMAL")
            database = cls(connection, path, schema)
            if not database._matches(sha256):
                database._rebuild(sha256)
        except BaseException:
            connection.close()
            raise
        return database

    def close(self) -> None:
        self._connection.close()

    def _matches(self, sha256: str) -> bool:
        try:
            row = self._connection.execute(
                f"SELECT format, sha256, schema FROM {META_TABLE}"
            ).fetchone()
        except sqlite3.OperationalError:
            return False  # no such table: a new (or foreign) database
        return bool(row == (FORMAT, sha256, self.schema.raw))

    def _rebuild(self, sha256: str) -> None:
        """Drop everything and create the module's empty tables, at cursor 0."""
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            tables = connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
            for (name,) in tables:
                connection.execute(f'DROP TABLE "{name.replace(chr(34), chr(34) * 2)}"')
            for table in self.schema.tables:
                connection.execute(table_ddl(table))
            connection.execute(
                f"CREATE TABLE {META_TABLE} (format INTEGER NOT NULL, sha256 TEXT NOT NULL,"
                " schema BLOB NOT NULL, cursor INTEGER NOT NULL) STRICT"
            )
            connection.execute(
                f"INSERT INTO {META_TABLE} VALUES (?, ?, ?, 0)", (FORMAT, sha256, self.schema.raw)
            )
            connection.execute(
                f"CREATE TABLE {SNAPSHOT_TABLE} (seq INTEGER PRIMARY KEY, blob BLOB NOT NULL)"
                " STRICT"
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def reset(self) -> None:
        """Empty every table and the snapshot, cursor 0 (the log is not the one folded)."""
        sha256 = self._connection.execute(f"SELECT sha256 FROM {META_TABLE}").fetchone()[0]
        self._rebuild(str(sha256))

    @property
    def cursor(self) -> int:
        """The last record whose changes the tables hold."""
        row = self._connection.execute(f"SELECT cursor FROM {META_TABLE}").fetchone()
        return int(row[0])

    def latest_snapshot(self) -> tuple[int, bytes] | None:
        """The module's newest snapshot (seq, blob), at or before the cursor."""
        row = self._connection.execute(
            f"SELECT seq, blob FROM {SNAPSHOT_TABLE} ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row is not None else None

    def save(
        self,
        changes: Sequence[Change],
        cursor: int,
        snapshot: tuple[int, bytes] | None = None,
    ) -> None:
        """Apply ``changes`` and move the cursor (and keep ``snapshot``, replacing the
        older one), in one transaction.

        Raises:
            sqlite3.Error: nothing was written.
        """
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for change in changes:
                if change.delete:
                    sql = self._deletes[change.table][change.key_length - 1]
                else:
                    sql = self._upserts[change.table]
                connection.executemany(sql, change.rows)
            connection.execute(f"UPDATE {META_TABLE} SET cursor = ?", (cursor,))
            if snapshot is not None:
                assert snapshot[0] <= cursor, (snapshot[0], cursor)
                connection.execute(f"DELETE FROM {SNAPSHOT_TABLE}")
                connection.execute(f"INSERT INTO {SNAPSHOT_TABLE} VALUES (?, ?)", snapshot)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def rows(self, table: str) -> set[tuple[object, ...]]:
        """Every row of one of the module's tables (for checks and tests)."""
        assert self.schema.table(table) is not None, table
        return set(self._connection.execute(f"SELECT * FROM {quoted(table)}").fetchall())
