"""The tables extension of the module ABI: schemas are checked when a module loads, row
changes are decoded against them, and a version 1 module (no tables) keeps working."""

from __future__ import annotations

import pytest

from node.derive import (
    BadRowsError,
    DeriveInstance,
    DeriveModule,
    ModuleRefusedError,
    RowDecoder,
    TableState,
    frame_records,
)
from node.proto import derive_pb2
from tests.derive.derive_strategies import CHANNELS_WASM, PAYMENTS_WASM, load_module
from tests.derive.wat_modules import counter_module
from tests.views.views_support import KINDS_WASM, counts_schema, schema_bytes, tables_module

INTEGER = derive_pb2.COLUMN_TYPE_INTEGER
TEXT = derive_pb2.COLUMN_TYPE_TEXT
BLOB = derive_pb2.COLUMN_TYPE_BLOB
UINT256 = derive_pb2.COLUMN_TYPE_UINT256
BOOL = derive_pb2.COLUMN_TYPE_BOOL
HEX = derive_pb2.COLUMN_TYPE_HEX


def _table(name: str, columns: list[tuple[str, int]], key: list[int]) -> derive_pb2.Table:
    return derive_pb2.Table(
        name=name,
        columns=[derive_pb2.Column(name=n, type=t) for n, t in columns],
        primary_key=key,
    )


def test_a_version_1_module_has_no_tables_and_works_as_before() -> None:
    module = DeriveModule(counter_module(), name="counter.wasm")
    assert not module.has_tables
    assert module.schema is None
    instance = DeriveInstance(module)
    assert instance.apply_batch(frame_records([b"a", b"b"])) == b""  # no output read
    with pytest.raises(Exception, match="has no tables"):
        instance.describe_tables()


@pytest.mark.parametrize("path", [CHANNELS_WASM, PAYMENTS_WASM, KINDS_WASM])
def test_the_shipped_modules_describe_valid_tables(path: object) -> None:
    module = load_module(path)  # type: ignore[arg-type]
    assert module.schema is not None
    names = [table.name for table in module.schema.tables]
    assert len(names) == len(set(names)) >= 3
    assert "totals" in names


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (_table("Bad", [("id", INTEGER)], [0]), "is not"),
        (_table("sqlite_x", [("id", INTEGER)], [0]), "reserved prefix"),
        (_table("scnode_view", [("id", INTEGER)], [0]), "reserved prefix"),
        (_table("t", [("id", INTEGER), ("id", TEXT)], [0]), "twice"),
        (_table("t", [("id", 99)], [0]), "no known type"),
        (_table("t", [("id", INTEGER)], []), "no primary key"),
        (_table("t", [("id", INTEGER)], [1]), "must name distinct columns"),
        (_table("t", [("id", INTEGER)], [0, 0]), "must name distinct columns"),
        (_table("t", [], [0]), "0 columns"),
    ],
)
def test_a_bad_schema_refuses_the_module(table: derive_pb2.Table, message: str) -> None:
    with pytest.raises(ModuleRefusedError, match=message):
        DeriveModule(tables_module(schema_bytes(table)), name="bad.wasm")


def test_two_tables_of_one_name_refuse_the_module() -> None:
    table = _table("t", [("id", INTEGER)], [0])
    with pytest.raises(ModuleRefusedError, match="a second table of that name"):
        DeriveModule(tables_module(schema_bytes(table, table)), name="bad.wasm")


def test_a_schema_that_does_not_parse_refuses_the_module() -> None:
    with pytest.raises(ModuleRefusedError, match="describe_tables wrote no TableSchema"):
        DeriveModule(tables_module(b"\xff\xff\xff"), name="bad.wasm")


def _decoder() -> RowDecoder:
    table = _table(
        "t",
        [("id", HEX), ("n", INTEGER), ("name", TEXT), ("raw", BLOB), ("amount", UINT256),
         ("flag", BOOL)],
        [0, 1],
    )  # fmt: skip
    module = DeriveModule(tables_module(schema_bytes(table)), name="t.wasm")
    assert module.schema is not None
    return RowDecoder(module.schema)


def _changes(*changes: derive_pb2.RowChange) -> bytes:
    return derive_pb2.RowChanges(changes=changes).SerializeToString()


def test_rows_decode_as_sql_keeps_them() -> None:
    decoder = _decoder()
    upsert = derive_pb2.RowChange(
        integers=[-5, 1], texts=["open"], blobs=[b"\xab" * 2, b"\x00\x01", (7).to_bytes(32, "big")]
    )
    nulls = derive_pb2.RowChange(integers=[3], blobs=[b"\x01"], nulls=[2, 3, 4, 5])
    delete = derive_pb2.RowChange(delete=True, blobs=[b"\xab\xab"])
    (runs_upsert, runs_delete) = decoder.decode(_changes(upsert, nulls, delete))
    assert runs_upsert.rows == [
        ("0xabab", -5, "open", b"\x00\x01", "7", 1),
        ("0x01", 3, None, None, None, None),
    ]
    assert (runs_delete.delete, runs_delete.key_length, runs_delete.rows) == (
        True,
        1,
        [("0xabab",)],
    )
    assert decoder.decode(b"") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (derive_pb2.RowChange(table=3), "table 3 of 1"),
        (derive_pb2.RowChange(integers=[1]), "no value for column 'id'"),
        (
            derive_pb2.RowChange(integers=[1, 1, 1], texts=["x"], blobs=[b"", b"", b""]),
            "values too many",
        ),
        (
            derive_pb2.RowChange(integers=[1, 1], texts=["x"], blobs=[b"", b"", b"\x01"]),
            "UINT256 value of 1 bytes",
        ),
        (derive_pb2.RowChange(integers=[1], nulls=[0]), "primary key column is NULL"),
        (derive_pb2.RowChange(nulls=[9]), "distinct column indexes"),
        (derive_pb2.RowChange(delete=True), "a delete of 0 values"),
        (derive_pb2.RowChange(delete=True, blobs=[b"", b""], integers=[1]), "a delete of 3"),
    ],
)
def test_rows_that_do_not_fit_their_table_are_refused(
    change: derive_pb2.RowChange, message: str
) -> None:
    with pytest.raises(BadRowsError, match=message):
        _decoder().decode(_changes(change))


def test_rows_that_do_not_parse_are_refused() -> None:
    with pytest.raises(BadRowsError, match="no RowChanges"):
        _decoder().decode(b"\x0a\xff")


def test_changes_after_describe_and_after_restore_hold_every_row() -> None:
    module = load_module(PAYMENTS_WASM)
    assert module.schema is not None
    instance = DeriveInstance(module)
    decoder = RowDecoder(module.schema)
    assert instance.describe_tables() == module.schema.raw
    first = TableState(module.schema)
    first.apply(decoder.decode(instance.apply_batch(b"")))
    assert first.rows()["totals"] == {(1, 0, 0)}
    # Nothing changed: the next answer is the totals row alone.
    (totals,) = decoder.decode(instance.apply_batch(b""))
    assert totals.rows == [(1, 0, 0)]


def test_a_module_with_tables_still_speaks_abi_version_1() -> None:
    """Tables are an extension of version 1, not a version 2: hosts that do not know
    them run the module as before."""
    module = DeriveModule(tables_module(counts_schema()), name="counts.wasm")
    assert module.has_tables
    assert DeriveInstance(module).abi_version == 1
