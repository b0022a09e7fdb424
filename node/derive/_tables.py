"""The tables extension of the module ABI: a module's schema and its row changes.

A module that exports ``describe_tables`` describes its state as tables
(``TableSchema`` in derive.proto); from that call on, each successful
``apply_batch`` leaves the rows the batch changed (``RowChanges``) in its output
(docs/derive-abi.md, "Tables"). This file checks a schema once, when the module
is loaded, and decodes row changes into Python values as SQL keeps them: a HEX
value as ``"0x..."``, a UINT256 as a decimal string, a BOOL as 0 or 1.

Decoding is on the hot path of every view (a replay of a million records carries
millions of rows), so each table gets a row builder compiled from its validated
schema: a tuple expression that takes each column's value from the list of its
type by position. Only indexes and the fixed converters below go into that code;
names never do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError

from node.core.constants import (
    derive_schema_columns_max,
    derive_schema_description_length_max,
    derive_schema_name_length_max,
    derive_schema_tables_max,
)
from node.core.errors import DeriveError
from node.derive._errors import ModuleRefusedError
from node.proto import derive_pb2

NAME: Final = re.compile(rf"[a-z][a-z0-9_]{{0,{derive_schema_name_length_max - 1}}}")
# Names SQLite keeps for itself, and the prefix of the host's own tables.
RESERVED_PREFIXES: Final = ("sqlite_", "scnode_")

INTEGER: Final[int] = derive_pb2.COLUMN_TYPE_INTEGER
TEXT: Final[int] = derive_pb2.COLUMN_TYPE_TEXT
BLOB: Final[int] = derive_pb2.COLUMN_TYPE_BLOB
UINT256: Final[int] = derive_pb2.COLUMN_TYPE_UINT256
BOOL: Final[int] = derive_pb2.COLUMN_TYPE_BOOL
HEX: Final[int] = derive_pb2.COLUMN_TYPE_HEX
# Which list of a RowChange carries each type: 0 integers, 1 texts, 2 blobs.
_SOURCE: Final[dict[int, int]] = {INTEGER: 0, BOOL: 0, TEXT: 1, BLOB: 2, UINT256: 2, HEX: 2}
SQL_TYPES: Final[dict[int, str]] = {
    INTEGER: "INTEGER",
    BOOL: "INTEGER",
    TEXT: "TEXT",
    BLOB: "BLOB",
    UINT256: "TEXT",
    HEX: "TEXT",
}
TYPE_NAMES: Final[dict[int, str]] = {
    INTEGER: "INTEGER",
    TEXT: "TEXT",
    BLOB: "BLOB",
    UINT256: "UINT256",
    BOOL: "BOOL",
    HEX: "HEX",
}


class BadRowsError(DeriveError):
    """A module's row changes do not match its tables (a bug of the module's)."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: int  # a derive_pb2.ColumnType value
    description: str = ""

    @property
    def type_name(self) -> str:
        return TYPE_NAMES[self.type]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[int, ...]  # indexes into columns
    description: str = ""

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(self.columns[index].name for index in self.primary_key)


@dataclass(frozen=True)
class Schema:
    """A module's tables, checked; ``raw`` is what ``describe_tables`` wrote."""

    tables: tuple[TableSpec, ...]
    raw: bytes

    def table(self, name: str) -> TableSpec | None:
        return next((table for table in self.tables if table.name == name), None)


def parse_schema(raw: bytes, module_name: str) -> Schema:
    """Check what a module's ``describe_tables`` wrote.

    Raises:
        ModuleRefusedError: it does not parse, or breaks a rule of the tables
            extension (the message names the table and column).
    """
    message = derive_pb2.TableSchema()
    try:
        message.ParseFromString(raw)
    except DecodeError as error:
        raise ModuleRefusedError(
            f"{module_name}: describe_tables wrote no TableSchema: {error}"
        ) from None
    if len(message.tables) > derive_schema_tables_max:
        raise ModuleRefusedError(
            f"{module_name}: {len(message.tables)} tables (at most {derive_schema_tables_max})"
        )
    tables: list[TableSpec] = []
    for index, table in enumerate(message.tables):
        try:
            tables.append(_table_spec(table, {spec.name for spec in tables}))
        except ValueError as error:
            raise ModuleRefusedError(
                f"{module_name}: describe_tables: tables[{index}] {table.name!r}: {error}"
            ) from None
    return Schema(tuple(tables), bytes(raw))


def _check_name(name: str, what: str) -> None:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not [a-z][a-z0-9_]* of at most "
            f"{derive_schema_name_length_max} characters"
        )
    if name.startswith(RESERVED_PREFIXES):
        raise ValueError(f"{what} {name!r} starts with a reserved prefix {RESERVED_PREFIXES}")


def _check_description(text: str) -> None:
    if len(text) > derive_schema_description_length_max:
        raise ValueError(
            f"a description of {len(text)} characters "
            f"(at most {derive_schema_description_length_max})"
        )


def _table_spec(table: derive_pb2.Table, taken: set[str]) -> TableSpec:
    _check_name(table.name, "name")
    if table.name in taken:
        raise ValueError("a second table of that name")
    _check_description(table.description)
    if not 1 <= len(table.columns) <= derive_schema_columns_max:
        raise ValueError(f"{len(table.columns)} columns (1 to {derive_schema_columns_max})")
    columns: list[ColumnSpec] = []
    for column in table.columns:
        _check_name(column.name, "column")
        if column.name in {spec.name for spec in columns}:
            raise ValueError(f"column {column.name!r} twice")
        if column.type not in _SOURCE:
            raise ValueError(f"column {column.name!r} has no known type ({column.type})")
        _check_description(column.description)
        columns.append(ColumnSpec(column.name, column.type, column.description))
    key = tuple(table.primary_key)
    if not key:
        raise ValueError("no primary key")
    if len(set(key)) != len(key) or any(index >= len(columns) for index in key):
        raise ValueError(f"primary key {list(key)} must name distinct columns")
    return TableSpec(table.name, tuple(columns), key, table.description)


# ---------------------------------------------------------------- row changes


def uint256_text(value: bytes) -> str:
    """A UINT256 value as SQL keeps it: decimal."""
    if len(value) != 32 and value:
        raise BadRowsError(f"a UINT256 value of {len(value)} bytes (32, or empty for 0)")
    return str(int.from_bytes(value, "big"))


def hex_text(value: bytes) -> str:
    """A HEX value as SQL keeps it."""
    return "0x" + value.hex()


_CONVERTERS: Final[dict[int, Callable[[bytes], object] | None]] = {
    INTEGER: None,
    BOOL: None,
    TEXT: None,
    BLOB: None,
    UINT256: uint256_text,
    HEX: hex_text,
}

Row = tuple[object, ...]
Builder = Callable[[Sequence[int], Sequence[str], Sequence[bytes]], Row]


@dataclass(frozen=True)
class Change:
    """Consecutive row changes of one kind: upserts of whole rows, or deletes by a key
    prefix of ``key_length`` columns."""

    table: int
    delete: bool
    key_length: int  # deletes only
    rows: list[Row]


def _compile_builder(
    table: TableSpec, nulls: tuple[int, ...] = ()
) -> tuple[Builder, tuple[int, int, int]]:
    """A function building a row from a RowChange's three lists when the columns
    ``nulls`` are NULL, and how many values each list then holds."""
    counts = [0, 0, 0]
    parts = []
    for index, column in enumerate(table.columns):
        if index in nulls:
            parts.append("None")
            continue
        source = _SOURCE[column.type]
        item = f"{'itb'[source]}[{counts[source]}]"
        counts[source] += 1
        converter = _CONVERTERS[column.type]
        parts.append(f"{converter.__name__}({item})" if converter else item)
    code = f"lambda i, t, b: ({', '.join(parts)},)"
    # Built from the validated schema: indexes and two known converters, no names.
    builder: Builder = eval(code, {"uint256_text": uint256_text, "hex_text": hex_text})
    return builder, (counts[0], counts[1], counts[2])


# Patterns of NULL columns a table gets a compiled builder for; rarer ones take the slow path.
_NULL_PATTERNS_MAX: Final = 32


class RowDecoder:
    """Decodes a module's ``RowChanges`` into runs of rows, checked against its schema."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        # Per table: the NULL columns of a row -> its builder and the lists' sizes.
        self._builders: list[dict[tuple[int, ...], tuple[Builder, tuple[int, int, int]]]] = [
            {(): _compile_builder(table)} for table in schema.tables
        ]

    def decode(self, raw: bytes) -> list[Change]:
        """The changes in ``raw``, consecutive ones of a kind grouped, in order.

        Raises:
            BadRowsError: ``raw`` does not parse, or a change does not fit its table.
        """
        if not raw:
            return []
        try:
            message = derive_pb2.RowChanges.FromString(raw)
        except DecodeError as error:
            raise BadRowsError(f"apply_batch wrote no RowChanges: {error}") from None
        runs: list[Change] = []
        tables = len(self._builders)
        current: Change | None = None
        for number, change in enumerate(message.changes):
            table = change.table
            if table >= tables:
                raise BadRowsError(f"change {number}: table {table} of {tables}")
            try:
                if change.delete:
                    row = self._key_prefix(table, change)
                    kind = (table, True, len(row))
                else:
                    row = self._row(table, change)
                    kind = (table, False, 0)
            except BadRowsError as error:
                name = self.schema.tables[table].name
                raise BadRowsError(f"change {number} ({name}): {error}") from None
            if current is None or (current.table, current.delete, current.key_length) != kind:
                current = Change(kind[0], kind[1], kind[2], [])
                runs.append(current)
            current.rows.append(row)
        return runs

    def _row(self, table: int, change: derive_pb2.RowChange) -> Row:
        integers, texts, blobs = change.integers, change.texts, change.blobs
        nulls = tuple(change.nulls)
        builders = self._builders[table]
        compiled = builders.get(nulls)
        if compiled is None:
            spec = self.schema.tables[table]
            if len(builders) >= _NULL_PATTERNS_MAX or not self._nulls_valid(spec, nulls):
                return self._row_with_nulls(spec, change)
            compiled = builders[nulls] = _compile_builder(spec, nulls)
        builder, counts = compiled
        if (len(integers), len(texts), len(blobs)) == counts:
            return builder(integers, texts, blobs)
        return self._row_with_nulls(self.schema.tables[table], change)

    @staticmethod
    def _nulls_valid(table: TableSpec, nulls: tuple[int, ...]) -> bool:
        return (
            list(nulls) == sorted(set(nulls))
            and all(index < len(table.columns) for index in nulls)
            and not set(nulls).intersection(table.primary_key)
        )

    def _row_with_nulls(self, table: TableSpec, change: derive_pb2.RowChange) -> Row:
        nulls = set(change.nulls)
        if len(nulls) != len(change.nulls) or any(n >= len(table.columns) for n in nulls):
            raise BadRowsError(f"nulls {list(change.nulls)} must be distinct column indexes")
        if nulls.intersection(table.primary_key):
            raise BadRowsError("a primary key column is NULL")
        present = [column for index, column in enumerate(table.columns) if index not in nulls]
        return _values(table, present, change, nulls=nulls)

    def _key_prefix(self, table: int, change: derive_pb2.RowChange) -> Row:
        spec = self.schema.tables[table]
        if change.nulls:
            raise BadRowsError("a delete with NULLs")
        length = len(change.integers) + len(change.texts) + len(change.blobs)
        if not 1 <= length <= len(spec.primary_key):
            raise BadRowsError(f"a delete of {length} values (1 to {len(spec.primary_key)})")
        key_columns = [spec.columns[index] for index in spec.primary_key[:length]]
        return _values(spec, key_columns, change, nulls=None)


def _values(
    table: TableSpec,
    columns: Sequence[ColumnSpec],
    change: derive_pb2.RowChange,
    *,
    nulls: set[int] | None,
) -> Row:
    """The values of ``columns`` taken in order from the change's lists; with ``nulls``,
    a whole row with None at those column indexes."""
    sources: list[Sequence[object]] = [change.integers, change.texts, change.blobs]
    positions = [0, 0, 0]
    taken: list[object] = []
    for column in columns:
        source = _SOURCE[column.type]
        if positions[source] >= len(sources[source]):
            raise BadRowsError(f"no value for column {column.name!r}")
        value = sources[source][positions[source]]
        positions[source] += 1
        converter = _CONVERTERS[column.type]
        taken.append(converter(value) if converter else value)  # type: ignore[arg-type]
    if positions != [len(source) for source in sources]:
        raise BadRowsError(f"{sum(map(len, sources)) - sum(positions)} values too many")
    if nulls is None:
        return tuple(taken)
    values = iter(taken)
    return tuple(None if index in nulls else next(values) for index in range(len(table.columns)))


class TableState:
    """Tables held in memory, changed by ``Change`` runs as a database would be: for
    checks (the conformance suite, the tests), not for a node's views."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        # table index -> first key value -> whole key -> row
        self._rows: list[dict[object, dict[Row, Row]]] = [{} for _ in schema.tables]

    def apply(self, changes: Sequence[Change]) -> None:
        for change in changes:
            buckets = self._rows[change.table]
            if change.delete:
                for prefix in change.rows:
                    self._delete(buckets, prefix)
                continue
            key_indexes = self.schema.tables[change.table].primary_key
            for row in change.rows:
                key = tuple(row[index] for index in key_indexes)
                buckets.setdefault(key[0], {})[key] = row

    @staticmethod
    def _delete(buckets: dict[object, dict[Row, Row]], prefix: Row) -> None:
        if len(prefix) == 1:
            buckets.pop(prefix[0], None)
            return
        bucket = buckets.get(prefix[0], {})
        for key in [key for key in bucket if key[: len(prefix)] == prefix]:
            del bucket[key]

    def rows(self) -> dict[str, set[Row]]:
        """Every table's rows, by table name."""
        return {
            table.name: {row for bucket in buckets.values() for row in bucket.values()}
            for table, buckets in zip(self.schema.tables, self._rows, strict=True)
        }
