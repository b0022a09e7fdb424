"""Tiny derivation modules written in WAT, for the host's refusal and trap tests."""

from __future__ import annotations

import wasmtime

# Exports every ABI function; `apply_batch` counts framed records into a global,
# `snapshot`/`restore` save and load that count, `query` answers a Cursor with it.
# Each {placeholder} replaces one piece to make a broken variant.
TEMPLATE = """
(module
  {imports}
  (memory (export "memory") {pages})
  (global $count (mut i32) (i32.const 0))
  (func (export "abi_version") (result i32) (i32.const {abi_version}))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
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
    (i32.const 0))
  (func (export "query") (param i32 i32) (result i32)
    ;; A QueryResult holding a Cursor whose last_seq is the count (below 128).
    (i32.store8 (i32.const 16) (i32.const 0x6a))
    (i32.store8 (i32.const 17) (i32.const 2))
    (i32.store8 (i32.const 18) (i32.const 0x08))
    (i32.store8 (i32.const 19) (global.get $count))
    (global.set $out_len (i32.const 4))
    (i32.const 0))
  (global $out_len (mut i32) (i32.const 0))
  (func (export "snapshot") (result i32)
    (i32.store (i32.const 16) (global.get $count))
    (global.set $out_len (i32.const 4))
    (i32.const 0))
  (func (export "restore") (param $at i32) (param $size i32) (result i32)
    (global.set $count (i32.load (local.get $at)))
    (i32.const 0))
  (func (export "out_ptr") (result i32) (i32.const 16))
  {out_len}
)
"""

OUT_LEN = '(func (export "out_len") (result i32) (global.get $out_len))'


def counter_module(
    *,
    imports: str = "",
    pages: int = 2,
    abi_version: int = 1,
    on_record: str = "",
    out_len: str = OUT_LEN,
) -> bytes:
    """The counter module, with one piece replaced."""
    text = TEMPLATE.format(
        imports=imports, pages=pages, abi_version=abi_version, on_record=on_record, out_len=out_len
    )
    return bytes(wasmtime.wat2wasm(text))


# Loops forever on its first record: only the fuel budget stops it.
INFINITE_LOOP = "(loop $forever (br $forever))"
# Grows memory one page at a time and traps when the cap refuses a page.
MEMORY_BOMB = """(loop $grow
  (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
  (unreachable)"""


def trap_at(count: int) -> str:
    """A check that fails (traps) when the record counter reaches ``count``."""
    return f"(if (i32.eq (global.get $count) (i32.const {count})) (then (unreachable)))"


def tables(count: int, elements: int = 1) -> str:
    """Declarations of ``count`` funcref tables of ``elements`` elements each (for ``imports``)."""
    return " ".join(f"(table {elements} funcref)" for _ in range(count))


# Grows table 0 by a billion elements (8 GB in wasmtime): without a cap this took 7.8 GB
# and 23 s. Traps when the cap refuses the growth, as a module checking its growth would.
TABLE_BOMB = """(if (i32.eq (table.grow 0 (ref.null func) (i32.const 1000000000)) (i32.const -1))
    (then (unreachable)))"""
