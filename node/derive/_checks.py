"""The conformance suite's checks of snapshots and tables, on a golden case's log.

Snapshots are a "must" of the ABI (docs/derive-abi.md, "Snapshots"): canonical
(the same records, the same bytes, whatever the batches and whether the state
was restored on the way), restorable (restoring then folding the rest equals
never restoring), and validated (a snapshot the module did not write is refused
and leaves the state as it was). A module with tables must also describe its
state exactly by its row changes: applied in order from the first answer, they
give the rows the module lists after a restore.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from node.core.errors import DeriveError
from node.derive._errors import RecordRejectedError
from node.derive._host import DeriveInstance, DeriveModule, frame_records
from node.derive._tables import RowDecoder, TableState
from node.proto import derive_pb2

# Batch sizes the snapshot check folds a log in (besides one batch for all of it).
BATCH_SIZES: Final = (1, 2, 3, 7)


class Outcome(Enum):
    PASS = "pass"
    DIFFERS = "differs"
    UNSUPPORTED = "unsupported"


class CheckKind(Enum):
    LOG = "log"
    QUERY = "query"
    SNAPSHOT = "snapshot"
    TABLES = "tables"


@dataclass(frozen=True)
class CheckResult:
    """One check of a case and its outcome: the log itself (``query`` empty), a golden
    query, or a snapshot or tables check (``query`` names it)."""

    case: str
    query: str
    outcome: Outcome
    detail: str = ""
    kind: CheckKind = CheckKind.QUERY


@dataclass(frozen=True)
class GoldenCase:
    name: str
    description: str
    batch: bytes
    rejects: tuple[int, int] | None
    queries: tuple[tuple[derive_pb2.Query, derive_pb2.QueryResult], ...]


class _Differs(Exception):
    """A check found a difference (the message says which)."""


def unframed(batch: bytes) -> list[bytes]:
    """The records of a framed batch (the golden files are well framed)."""
    records, position = [], 0
    while position < len(batch):
        length = int.from_bytes(batch[position : position + 4], "little")
        records.append(batch[position + 4 : position + 4 + length])
        position += 4 + length
    return records


def _folded(module: DeriveModule, records: Sequence[bytes], size: int) -> DeriveInstance:
    instance = DeriveInstance(module)
    for start in range(0, len(records), size):
        instance.apply_batch(frame_records(records[start : start + size]))
        if size == 1:
            instance.snapshot()  # taking one must not change the state
    return instance


def _first_difference(left: bytes, right: bytes) -> str:
    index = next((i for i, (a, b) in enumerate(zip(left, right, strict=False)) if a != b), None)
    where = f"byte {index}" if index is not None else f"length {len(left)} vs {len(right)}"
    return f"first difference at {where}"


def _check(case: str, name: str, kind: CheckKind, run: object) -> CheckResult:
    """Run one check: pass, or differs with why (a trap or error included)."""
    assert callable(run)
    try:
        detail = run()
    except _Differs as difference:
        return CheckResult(case, name, Outcome.DIFFERS, str(difference), kind)
    except DeriveError as error:
        return CheckResult(case, name, Outcome.DIFFERS, str(error), kind)
    return CheckResult(case, name, Outcome.PASS, str(detail or ""), kind)


def check_snapshots(module: DeriveModule, case: GoldenCase) -> Iterator[CheckResult]:
    """The snapshot checks of one case whose log the module folds."""
    records = unframed(case.batch)
    full = _folded(module, records, max(len(records), 1))
    reference = full.snapshot()
    kind = CheckKind.SNAPSHOT
    yield _check(
        case.name, "snapshot: same bytes whatever the batches", kind,
        lambda: _batchings(module, records, reference),
    )  # fmt: skip
    yield _check(
        case.name, "snapshot: restore then the rest equals never restoring", kind,
        lambda: _restores(module, records, reference, case),
    )  # fmt: skip
    garbage = _garbage(reference)
    yield _check(
        case.name, "snapshot: garbage refused, state kept", kind,
        lambda: _refusals(module, records, reference, garbage),
    )  # fmt: skip
    cuts = sorted({1, len(reference) // 4, len(reference) // 2, len(reference) - 1} - {0})
    truncated = [reference[:cut] for cut in cuts if cut < len(reference)]
    yield _check(
        case.name, "snapshot: truncated refused, state kept", kind,
        lambda: _refusals(module, records, reference, truncated),
    )  # fmt: skip


def _batchings(module: DeriveModule, records: Sequence[bytes], reference: bytes) -> str:
    for size in BATCH_SIZES:
        blob = _folded(module, records, size).snapshot()
        if blob != reference:
            raise _Differs(
                f"batches of {size} give {len(blob)} bytes, one batch {len(reference)}: "
                + _first_difference(blob, reference)
            )
    return f"{len(reference)} bytes, batches of {', '.join(map(str, BATCH_SIZES))} and all"


def _restores(
    module: DeriveModule, records: Sequence[bytes], reference: bytes, case: GoldenCase
) -> str:
    count = len(records)
    cuts = sorted(
        {0, 1, count // 3, count // 2, 2 * count // 3, count - 1, count} & set(range(count + 1))
    )
    answers = [_folded(module, records, max(count, 1)).query(query) for query, _ in case.queries]
    for cut in cuts:
        blob = _folded(module, records[:cut], max(cut, 1)).snapshot()
        restored = DeriveInstance(module)
        try:
            restored.restore(blob)
        except RecordRejectedError as error:
            raise _Differs(f"its own snapshot after {cut} records is refused: {error}") from None
        if records[cut:]:
            restored.apply_batch(frame_records(records[cut:]))
        final = restored.snapshot()
        if final != reference:
            raise _Differs(
                f"restored after {cut} records, then the rest: "
                + _first_difference(final, reference)
            )
        for (query, _), answer in zip(case.queries, answers, strict=True):
            if restored.query(query) != answer:
                raise _Differs(f"restored after {cut} records: another answer to {query}")
    return f"restored after {', '.join(map(str, cuts))} records"


def _garbage(reference: bytes) -> list[bytes]:
    noise = hashlib.sha256(reference).digest() * 8
    return [b"", b"\x00" * 8, noise, reference[:4] + noise, bytes(range(256))]


def _refusals(
    module: DeriveModule, records: Sequence[bytes], reference: bytes, blobs: Sequence[bytes]
) -> str:
    instance = _folded(module, records, max(len(records), 1))
    for blob in blobs:
        try:
            instance.restore(blob)
        except RecordRejectedError:
            pass
        else:
            raise _Differs(f"a snapshot of {len(blob)} bytes ({blob[:8].hex()}...) was accepted")
        if instance.snapshot() != reference:
            raise _Differs(f"refusing {len(blob)} bytes changed the state")
    return f"{len(blobs)} refused"


def check_tables(module: DeriveModule, case: GoldenCase) -> Iterator[CheckResult]:
    """The tables checks of one case whose log the module folds."""
    records = unframed(case.batch)
    kind = CheckKind.TABLES
    yield _check(
        case.name, "tables: row changes add up to the state", kind,
        lambda: _tables_add_up(module, records, restore_at=None),
    )  # fmt: skip
    yield _check(
        case.name, "tables: after a restore too", kind,
        lambda: _tables_add_up(module, records, restore_at=len(records) // 2),
    )  # fmt: skip


def _with_tables(module: DeriveModule) -> tuple[DeriveInstance, RowDecoder, TableState]:
    instance = DeriveInstance(module)
    instance.describe_tables()
    assert module.schema is not None
    return instance, RowDecoder(module.schema), TableState(module.schema)


def _tables_add_up(module: DeriveModule, records: Sequence[bytes], restore_at: int | None) -> str:
    instance, decoder, tables = _with_tables(module)
    start = 0
    if restore_at is not None:
        instance.restore(_folded(module, records[:restore_at], max(restore_at, 1)).snapshot())
        start = restore_at
    tables.apply(decoder.decode(instance.apply_batch(b"")))
    for position in range(start, len(records), 3):
        tables.apply(
            decoder.decode(instance.apply_batch(frame_records(records[position : position + 3])))
        )
    dump, dump_decoder, expected = _with_tables(module)
    dump.restore(instance.snapshot())
    expected.apply(dump_decoder.decode(dump.apply_batch(b"")))
    got, want = tables.rows(), expected.rows()
    for name in want:
        if got[name] != want[name]:
            extra, missing = got[name] - want[name], want[name] - got[name]
            raise _Differs(
                f"table {name}: {len(extra)} rows the state lacks, {len(missing)} missing"
                + (
                    f", e.g. {sorted(map(repr, extra or missing))[0][:120]}"
                    if extra or missing
                    else ""
                )
            )
    return f"{sum(map(len, want.values()))} rows in {len(want)} tables"
