"""Oracles and small modules for the views tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import wasmtime

from node.log import KIND_NAMES, EventLog
from node.proto import derive_pb2, log_pb2
from tests.derive.derive_strategies import ROOT

KINDS_WASM = ROOT / "wasm" / "examples" / "kinds.wasm"
Rows = dict[str, set[tuple[object, ...]]]


class KindsOracle:
    """wasm/examples/kinds.c in Python: records per kind, vouchers per channel."""

    def __init__(self) -> None:
        self.cursor = 0
        self.kinds: dict[int, int] = {}
        self.channels: dict[bytes, tuple[int, int]] = {}

    def apply(self, record: log_pb2.LogRecord) -> None:
        assert record.seq == self.cursor + 1
        case = record.WhichOneof("payload")
        assert case is not None
        kind = log_pb2.LogRecord.DESCRIPTOR.fields_by_name[case].number
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if case == "accepted_voucher":
            voucher = record.accepted_voucher.voucher
            count, highest = self.channels.get(voucher.channel_id, (0, 0))
            amount = int.from_bytes(voucher.amount, "big")
            self.channels[voucher.channel_id] = (count + 1, max(highest, amount))
        self.cursor = record.seq

    def table_rows(self) -> Rows:
        return {
            "record_kinds": {(k, KIND_NAMES[k], n) for k, n in self.kinds.items()},
            "voucher_channels": {
                ("0x" + channel.hex(), count, str(highest))
                for channel, (count, highest) in self.channels.items()
            },
            "totals": {(1, self.cursor, self.cursor)},
        }


def append(log: EventLog, records: Sequence[log_pb2.LogRecord]) -> None:
    """Append copies of ``records`` without their header (the log numbers them)."""
    copies = []
    for record in records:
        copy = log_pb2.LogRecord()
        copy.CopyFrom(record)
        for name in ("seq", "format_version", "kind", "prev_hash"):
            copy.ClearField(name)
        copies.append(copy)
    if copies:
        log.append_batch(copies)


def schema_bytes(*tables: derive_pb2.Table) -> bytes:
    return derive_pb2.TableSchema(tables=tables).SerializeToString()


def counts_schema() -> bytes:
    """One table: counts (id INTEGER, records INTEGER), keyed by id."""
    return schema_bytes(
        derive_pb2.Table(
            name="counts",
            columns=[
                derive_pb2.Column(name="id", type=derive_pb2.COLUMN_TYPE_INTEGER),
                derive_pb2.Column(name="records", type=derive_pb2.COLUMN_TYPE_INTEGER),
            ],
            primary_key=[0],
        )
    )


def _wat_bytes(data: bytes) -> str:
    return "".join(f"\\{byte:02x}" for byte in data)


# A module with tables: `describe_tables` answers SCHEMA, every `apply_batch` the fixed
# ROWS (whatever the batch), after counting the records into a global as the counter
# module does (tests/derive/wat_modules.py); {on_record} runs per record.
_TABLES_TEMPLATE = """
(module
  (memory (export "memory") 2)
  (global $count (mut i32) (i32.const 0))
  (global $out_ptr (mut i32) (i32.const 16))
  (global $out_len (mut i32) (i32.const 0))
  (data (i32.const 4096) "{schema}")
  (data (i32.const 32768) "{rows}")
  (func (export "abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param i32) (result i32) (i32.const 65536))
  (func (export "describe_tables") (result i32)
    (global.set $out_ptr (i32.const 4096))
    (global.set $out_len (i32.const {schema_length}))
    (i32.const 0))
  (func (export "apply_batch") (param $at i32) (param $size i32) (result i32)
    (local $end i32) (local $length i32)
    (local.set $end (i32.add (local.get $at) (local.get $size)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $length (i32.load (local.get $at)))
        (global.set $count (i32.add (global.get $count) (i32.const 1)))
        {on_record}
        (local.set $at (i32.add (local.get $at) (i32.add (local.get $length) (i32.const 4))))
        (br $next)))
    (global.set $out_ptr (i32.const 32768))
    (global.set $out_len (i32.const {rows_length}))
    (i32.const 0))
  (func (export "query") (param i32 i32) (result i32)
    (i32.store8 (i32.const 16) (i32.const 0x6a))
    (i32.store8 (i32.const 17) (i32.const 2))
    (i32.store8 (i32.const 18) (i32.const 0x08))
    (i32.store8 (i32.const 19) (global.get $count))
    (global.set $out_ptr (i32.const 16))
    (global.set $out_len (i32.const 4))
    (i32.const 0))
  (func (export "snapshot") (result i32)
    (i32.store (i32.const 16) (global.get $count))
    (global.set $out_ptr (i32.const 16))
    (global.set $out_len (i32.const 4))
    (i32.const 0))
  (func (export "restore") (param $at i32) (param $size i32) (result i32)
    (global.set $count (i32.load (local.get $at)))
    (i32.const 0))
  (func (export "out_ptr") (result i32) (global.get $out_ptr))
  (func (export "out_len") (result i32) (global.get $out_len))
)
"""


def tables_module(schema: bytes, rows: bytes = b"", *, on_record: str = "") -> bytes:
    """A module describing ``schema`` and answering ``rows`` after every batch."""
    assert len(schema) < 28_000
    assert len(rows) < 32_000
    text = _TABLES_TEMPLATE.format(
        schema=_wat_bytes(schema),
        schema_length=len(schema),
        rows=_wat_bytes(rows),
        rows_length=len(rows),
        on_record=on_record,
    )
    return bytes(wasmtime.wat2wasm(text))


def write_module(path: Path, wasm: bytes) -> Path:
    path.write_bytes(wasm)
    return path
