"""The RocksDB event log: append batches durably, read ranges, keep snapshots.

Three column families in one RocksDB (raw mode, so any RocksDB tool reads it):

* "records": key = seq as big-endian u64, value = the stored ``LogRecord``;
* "snapshots": key = module key || big-endian u64 seq, value = a state blob;
* "meta": the head (last seq || sha256 of its record), the format version and,
  once a prefix was archived and pruned, the checkpoint (the last pruned seq ||
  sha256 of its record: the link the first live record carries).

The head is written in the same write batch as the records it covers, so a lost
tail or a changed last record shows as a mismatch between the two. The
checkpoint is written in the same batch as the deletion of the prefix
(docs/adr/0011-log-archive.md).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, cast

from google.protobuf.message import DecodeError
from rocksdict import (
    AccessType,
    ColumnFamily,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)
from rocksdict import Snapshot as DbSnapshot

from node.core.constants import (
    log_batch_records_max,
    log_commit_records_max,
    log_format_version,
    log_memtables_bytes_max,
    log_read_chunk_records,
    log_snapshot_bytes_max,
    log_snapshot_key_bytes,
    uint64_max,
)
from node.core.errors import (
    InvalidValueError,
    LogBusyError,
    LogClosedError,
    LogCorruptError,
    LogError,
    LogNotFoundError,
    LogPrunedError,
    LogStorageError,
)
from node.log._records import (
    CHECKPOINT_KEY,
    FORMAT_KEY,
    HEAD_KEY,
    SEQ_KEY_BYTES,
    ZERO_HASH,
    chain_values,
    decode_head,
    encode_head,
    key_seq,
    payload_kind,
    record_hash,
    record_tail,
    seq_key,
    time_field,
)
from node.log._types import PreparedBatch, SeqRange, Snapshot, VerifyReport
from node.log._verify import verify_chain
from node.proto import log_pb2

if TYPE_CHECKING:
    from node.metrics import Metrics

COLUMN_FAMILIES: Final = ("records", "snapshots", "meta")
_FORMAT_VALUE: Final = log_format_version.to_bytes(4, "big")


@dataclass(frozen=True)
class _Handles:
    """Everything that keeps RocksDB open; dropped as one on close."""

    db: Rdict
    records: Rdict
    snapshots: Rdict
    meta: Rdict
    records_cf: ColumnFamily
    snapshots_cf: ColumnFamily
    meta_cf: ColumnFamily


def storage_error(error: Exception, path: Path, action: str) -> LogError:
    """Translate a rocksdict error (always a plain Exception) into a LogError."""
    text = str(error)
    if "LOCK" in text and "current process" in text:
        return LogBusyError(f"event log {path} is already open in this process")
    if "LOCK" in text:
        return LogBusyError(f"event log {path} is in use by another process")
    if "does not exist" in text:
        return LogNotFoundError(f"no event log at {path}")
    if "comparator" in text:
        return LogStorageError(f"{path} is not an scnode event log (RocksDB: {text})")
    return LogStorageError(f"RocksDB failed while {action} event log {path}: {text}")


def _options(*, create: bool) -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(create)
    options.create_missing_column_families(create)
    # A crash can tear the last WAL entry only; recover everything before it.
    options.set_wal_recovery_mode(DBRecoveryMode.point_in_time())
    # Memtables are flushed at this total rather than RocksDB's 64 MiB per family: a busy
    # node's memory otherwise grows with what it logged lately (bench_hub's hub).
    options.set_db_write_buffer_size(log_memtables_bytes_max)
    return options


class EventLog:
    """An append-only, hash-chained, sequence-numbered log of ``LogRecord``.

    Appends are serialised by an internal lock, so threads (and trio tasks via
    ``trio.to_thread``) may append concurrently and still get gap-free numbers.
    Reads run beside appends and see every record appended before they start.
    """

    def __init__(self, handles: _Handles, path: Path, *, read_only: bool) -> None:
        """Wrap an opened database; use ``EventLog.open``."""
        self._handles: _Handles | None = handles
        self._path = path
        self._read_only = read_only
        self._lock = threading.Lock()
        self._sync = WriteOptions()
        self._sync.sync = True
        # Batches are written unsynced, then the WAL is fsynced by flush_wal:
        # rocksdict holds the GIL through write(sync=True) but releases it in
        # flush_wal, so other threads (a trio loop) keep running during fsync.
        self._unsynced = WriteOptions()
        self._unsynced.sync = False
        self._last_seq = 0
        self._head_hash = ZERO_HASH
        self._pruned_seq = 0  # records 1.._pruned_seq are archived, not here
        self._pruned_hash = ZERO_HASH  # sha256 of record _pruned_seq
        self._damage: tuple[int, str] | None = None
        self._sync_failure: str | None = None
        self.metrics: Metrics | None = None  # counts appends, records, bytes, fsync time
        try:
            self._load_head(handles)
        except BaseException:
            self._handles = None
            raise

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, create: bool = True, read_only: bool = False
    ) -> EventLog:
        """Open the log at ``path``.

        Args:
            path: the log's directory.
            create: create the log if there is none (ignored when ``read_only``).
            read_only: open without the write lock, beside a running node.

        Raises:
            LogNotFoundError: no log at ``path`` and not creating one.
            LogBusyError: another process or handle holds the log open.
            LogStorageError: RocksDB refused the directory.
        """
        log_path = Path(path)
        creating = create and not read_only
        if not creating and not (log_path / "CURRENT").is_file():
            raise LogNotFoundError(f"no event log at {log_path}")
        if creating:
            try:
                log_path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise LogStorageError(f"cannot create event log {log_path}: {error}") from None
        access = AccessType.read_only() if read_only else AccessType.read_write()
        families = {name: _options(create=creating) for name in COLUMN_FAMILIES}
        try:
            db = Rdict(str(log_path), _options(create=creating), families, access)
        except Exception as error:
            raise storage_error(error, log_path, "opening") from None
        try:
            handles = _Handles(
                db=db,
                records=db.get_column_family("records"),
                snapshots=db.get_column_family("snapshots"),
                meta=db.get_column_family("meta"),
                records_cf=db.get_column_family_handle("records"),
                snapshots_cf=db.get_column_family_handle("snapshots"),
                meta_cf=db.get_column_family_handle("meta"),
            )
        except Exception as error:
            db.close()
            raise storage_error(error, log_path, "opening") from None
        try:
            return cls(handles, log_path, read_only=read_only)
        except BaseException:
            del handles
            db.close()
            raise

    def _load_head(self, handles: _Handles) -> None:
        """Read the head and check it against the last record (cheap, on open)."""
        stored_format = handles.meta.get(FORMAT_KEY)
        head_value = handles.meta.get(HEAD_KEY)
        checkpoint_value = handles.meta.get(CHECKPOINT_KEY)
        last_key = cast(bytes | None, next(iter(handles.records.keys(backwards=True)), None))
        if stored_format is None and head_value is None and last_key is None:
            if not self._read_only:
                handles.meta.put(FORMAT_KEY, _FORMAT_VALUE, self._sync)
            return
        if stored_format is not None and stored_format != _FORMAT_VALUE:
            version = int.from_bytes(stored_format, "big")
            raise LogStorageError(f"{self._path} holds log format {version}, expected 1")
        head = decode_head(head_value) if head_value is not None else (0, ZERO_HASH)
        checkpoint = (0, ZERO_HASH) if checkpoint_value is None else decode_head(checkpoint_value)
        if head is None or checkpoint is None:
            what = "head" if head is None else "checkpoint"
            self._damage = (1, f"the {what} in meta is malformed")
            return
        self._last_seq, self._head_hash = head
        self._pruned_seq, self._pruned_hash = checkpoint
        self._damage = self._head_damage(handles, last_key, stored_format)

    def _head_damage(
        self, handles: _Handles, last_key: bytes | None, stored_format: bytes | None
    ) -> tuple[int, str] | None:
        """What is wrong with the head, the checkpoint and the last record, if anything."""
        last_seq = key_seq(last_key) if last_key is not None else self._pruned_seq
        if self._pruned_seq > self._last_seq:
            return (self._last_seq + 1, f"the checkpoint at {self._pruned_seq} is past the head")
        if last_seq != self._last_seq:
            first_bad = min(last_seq, self._last_seq) + 1
            return (first_bad, f"last record is {last_seq}, head says {self._last_seq}")
        if last_seq == self._pruned_seq:  # every record pruned (or none ever written)
            if self._head_hash != self._pruned_hash:
                return (max(last_seq, 1), "the head hash differs from the checkpoint's")
        elif record_hash(handles.records[seq_key(last_seq)] or b"") != self._head_hash:
            return (last_seq, "its sha256 differs from the head hash in meta")
        if stored_format is None:
            return (1, "meta has no format_version")
        return None

    # Life cycle.

    def close(self) -> None:
        """Release RocksDB and its lock; later calls raise ``LogClosedError``."""
        with self._lock:
            handles, self._handles = self._handles, None
            if handles is None:
                return
            db = handles.db
            # RocksDB stays open (and locked) while any handle is referenced.
            del handles
            db.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handles is None else f"last_seq={self._last_seq}"
        return f"EventLog({str(self._path)!r}, {state})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._handles is None

    @property
    def last_seq(self) -> int:
        """The sequence number of the last durable record (0 when empty)."""
        self._live()
        return self._last_seq

    @property
    def head_hash(self) -> bytes:
        """sha256 of the last record's stored bytes (zeros when empty)."""
        self._live()
        return self._head_hash

    @property
    def first_seq(self) -> int:
        """The first record the live log holds (or will hold): 1 unless a prefix was
        pruned (``prune``), then the checkpoint's seq + 1."""
        self._live()
        return self._pruned_seq + 1

    @property
    def checkpoint(self) -> tuple[int, bytes]:
        """(the last pruned seq, sha256 of that record); (0, zeros) if none was pruned."""
        self._live()
        return self._pruned_seq, self._pruned_hash

    def _live(self) -> _Handles:
        handles = self._handles
        if handles is None:
            raise LogClosedError(f"event log {self._path} is closed")
        return handles

    # Appending.

    def append_batch(self, records: Sequence[log_pb2.LogRecord]) -> SeqRange:
        """Append records durably, in one write batch with one fsync.

        The log fills ``seq``, ``format_version``, ``kind`` and ``prev_hash``;
        the caller sets the payload and, if it matters, ``time_ms``. The records
        given are not modified.

        Args:
            records: 1..``log_batch_records_max`` records, each with a payload.

        Returns:
            The sequence numbers given, once the records are durable.

        Raises:
            InvalidValueError: an empty or oversized batch, or a bad record.
            LogClosedError, LogCorruptError, LogStorageError: see ``open``.
        """
        _check_batch_size("records", len(records))
        tails: list[tuple[int, bytes]] = []
        for index, record in enumerate(records):
            try:
                tails.append(record_tail(record))
            except InvalidValueError as error:
                raise InvalidValueError(f"records[{index}]", str(error)) from None
        return self._append(tails)

    def append_payloads(self, payloads: Sequence[bytes], *, time_ms: int) -> SeqRange:
        """Append already-encoded payloads: the fast path for hot code.

        Args:
            payloads: each ``LogRecord(<case>=message).SerializeToString()``, a
                record holding only its payload field.
            time_ms: the acceptance time written into every record of the batch.

        Returns:
            The sequence numbers given, once the records are durable.

        Raises:
            InvalidValueError: an empty or oversized batch, a bad time or payload.
            LogClosedError, LogCorruptError, LogStorageError: see ``open``.
        """
        _check_batch_size("payloads", len(payloads))
        time = time_field(time_ms)
        try:
            tails = [(payload_kind(payload), time + payload) for payload in payloads]
        except (InvalidValueError, TypeError):
            for index, payload in enumerate(payloads):
                if not isinstance(payload, bytes):
                    raise InvalidValueError(f"payloads[{index}]", "is not bytes") from None
                try:
                    payload_kind(payload)
                except InvalidValueError as error:
                    raise InvalidValueError(f"payloads[{index}]", str(error)) from None
            raise
        return self._append(tails)

    def _append(self, tails: list[tuple[int, bytes]]) -> SeqRange:
        with self._lock:
            handles = self._live()
            self._check_appendable()
            first = self._last_seq + 1
            values, last_hash = chain_values(first, self._head_hash, tails)
            self._write_records(handles, first, values, last_hash)
        return SeqRange(first, first + len(values) - 1)

    def _write_records(
        self, handles: _Handles, first: int, values: Sequence[bytes], last_hash: bytes
    ) -> None:
        """Write hash-linked records after the head with the new head, in one durable batch."""
        assert first == self._last_seq + 1
        batch = WriteBatch(raw_mode=True)
        batch.set_default_column_family(handles.records_cf)
        put = batch.put
        seq = first
        for value in values:
            put(seq.to_bytes(SEQ_KEY_BYTES, "big"), value)
            seq += 1
        last = seq - 1
        batch.put(HEAD_KEY, encode_head(last, last_hash), handles.meta_cf)
        self._write_durably(handles, batch, "appending to")
        self._last_seq = last
        self._head_hash = last_hash
        metrics = self.metrics
        if metrics is not None:
            metrics.log_appends += 1
            metrics.log_records += len(values)
            metrics.log_bytes += sum(map(len, values))

    def prepare(
        self, records: Sequence[log_pb2.LogRecord], *, after: PreparedBatch | None = None
    ) -> PreparedBatch:
        """Number, encode and hash-link records as the next ones, without writing them.

        The one writer of a log prepares what a step causes, folds the stored bytes
        into its derived state, and commits them all at once (``commit``).

        Args:
            records: records with a payload (and, if it matters, ``time_ms``).
            after: a batch prepared before: these records follow it and the result
                holds both; None: they follow the head.

        Raises:
            InvalidValueError: a bad record, or more than ``log_commit_records_max``.
            LogClosedError: the log is closed.
        """
        self._live()
        tails: list[tuple[int, bytes]] = []
        for index, record in enumerate(records):
            try:
                tails.append(record_tail(record))
            except InvalidValueError as error:
                raise InvalidValueError(f"records[{index}]", str(error)) from None
        if after is None:
            after = PreparedBatch(self._last_seq + 1, self._head_hash, (), self._head_hash)
        if len(after) + len(tails) > log_commit_records_max:
            raise InvalidValueError(
                "records", f"a commit holds at most {log_commit_records_max} records"
            )
        if not tails:
            return after
        values, last_hash = chain_values(after.last + 1, after.last_hash, tails)
        return PreparedBatch(after.first, after.base_hash, (*after.values, *values), last_hash)

    def commit(self, prepared: PreparedBatch) -> SeqRange | None:
        """Write a prepared batch durably: one write batch, one fsync.

        Returns:
            The sequence numbers written (None for an empty batch).

        Raises:
            LogError: the batch was not prepared on the current head (another
                append came in between: a bug of the caller's).
            LogClosedError, LogCorruptError, LogStorageError: see ``append_batch``.
        """
        with self._lock:
            handles = self._live()
            self._check_appendable()
            if prepared.first != self._last_seq + 1 or prepared.base_hash != self._head_hash:
                raise LogError(
                    f"event log {self._path}: a batch prepared after record"
                    f" {prepared.first - 1} cannot follow record {self._last_seq}"
                )
            if not prepared.values:
                return None
            self._write_records(handles, prepared.first, prepared.values, prepared.last_hash)
        return SeqRange(prepared.first, prepared.last)

    def _check_appendable(self) -> None:
        if self._read_only:
            raise LogError(f"event log {self._path} is open read-only")
        if self._damage is not None:
            seq, problem = self._damage
            raise LogCorruptError(seq, f"{problem}: refusing to append (run scnode log verify)")
        if self._sync_failure is not None:
            raise LogStorageError(f"{self._sync_failure}; reopen the log before appending")

    def _write_durably(self, handles: _Handles, batch: WriteBatch, action: str) -> None:
        """Apply ``batch`` atomically and fsync the WAL; returns once it is durable."""
        try:
            handles.db.write(batch, self._unsynced)
        except Exception as error:
            raise storage_error(error, self._path, action) from None
        started = time.perf_counter()
        try:
            handles.db.flush_wal(True)
        except Exception as error:
            # The batch is applied but maybe not durable: the next append must
            # not build on it. Reopening recovers whatever reached the disk.
            failure = storage_error(error, self._path, "syncing")
            self._sync_failure = str(failure)
            raise failure from None
        if self.metrics is not None:
            self.metrics.fsync_seconds.observe(time.perf_counter() - started)

    # Reading.

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[log_pb2.LogRecord]:
        """Records ``from_seq..to_seq`` (inclusive; ``to_seq`` defaults to the end).

        The range is fixed when the call is made and clamped to ``last_seq``.

        Raises:
            InvalidValueError: ``from_seq`` below 1 or ``to_seq`` below 0.
            LogCorruptError: a record is missing or does not parse.
        """
        first, last = self._bounds(from_seq, to_seq)
        return self._parsed(first, last)

    def read_raw(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, stored bytes) for ``from_seq..to_seq``, as ``read`` but unparsed.

        Raises:
            InvalidValueError: ``from_seq`` below 1 or ``to_seq`` below 0.
            LogCorruptError: a record is missing.
        """
        first, last = self._bounds(from_seq, to_seq)
        return self._raw(first, last)

    def _bounds(self, from_seq: int, to_seq: int | None) -> tuple[int, int]:
        self._live()
        if from_seq < 1:
            raise InvalidValueError("from_seq", f"{from_seq} is below 1")
        if to_seq is not None and to_seq < 0:
            raise InvalidValueError("to_seq", f"{to_seq} is below 0")
        last = self._last_seq if to_seq is None else min(to_seq, self._last_seq)
        if from_seq <= min(last, self._pruned_seq):
            raise pruned_error(self._pruned_seq, from_seq)
        return from_seq, last

    def _parsed(self, first: int, last: int) -> Iterator[log_pb2.LogRecord]:
        parse = log_pb2.LogRecord.FromString
        for seq, value in self._raw(first, last):
            try:
                record = parse(value)
            except DecodeError as error:
                raise LogCorruptError(seq, f"does not parse as a LogRecord ({error})") from None
            if record.seq != seq:
                raise LogCorruptError(seq, f"holds seq {record.seq}")
            yield record

    def _raw(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        start = first
        while start <= last:
            count = min(log_read_chunk_records, last - start + 1)
            # A whole chunk is fetched and its iterator dropped before yielding,
            # so no RocksDB iterator outlives a pause of the caller (or a close).
            values = self._fetch(start, count)
            yield from zip(range(start, start + count), values, strict=True)
            start += count

    def _fetch(self, start: int, count: int) -> list[bytes]:
        """Records ``start..start+count-1``; exactly ``count`` of them or an error."""
        records = self._live().records
        bound = ReadOptions()
        bound.set_iterate_upper_bound(seq_key(start + count))
        try:
            values: list[bytes] = list(records.values(from_key=seq_key(start), read_opt=bound))
        except Exception as error:
            raise storage_error(error, self._path, "reading") from None
        if len(values) != count:
            raise _gap_error(records, start, count)
        return values

    # Snapshots.

    def put_snapshot(self, key: bytes, seq: int, blob: bytes) -> None:
        """Store a module's state after records ``1..seq`` (durably).

        Args:
            key: ``log_snapshot_key_bytes`` bytes naming the module (its sha256).
            seq: the last record folded into the state, 0..``last_seq``.
            blob: the serialised state.

        Raises:
            InvalidValueError: a bad key, seq or blob.
        """
        self.put_snapshots([Snapshot(key, seq, blob)])

    def put_snapshots(
        self, snapshots: Sequence[Snapshot], *, delete: Sequence[tuple[bytes, int]] = ()
    ) -> None:
        """Store several states at once (one durable write): states that must be
        restored together, such as a module's and the engine's at the same seq.

        Args:
            snapshots: the states to store.
            delete: ``(key, seq)`` of snapshots they replace, removed in the same write.

        Raises:
            InvalidValueError: a bad key, seq or blob (nothing is written).
        """
        handles = self._live()
        if self._read_only:
            raise LogError(f"event log {self._path} is open read-only")
        batch = WriteBatch(raw_mode=True)
        for key, seq in delete:
            _check_snapshot_key(key)
            batch.delete(key + seq_key(seq), handles.snapshots_cf)
        for snapshot in snapshots:
            _check_snapshot_key(snapshot.key)
            if not self._pruned_seq <= snapshot.seq <= self._last_seq:
                raise InvalidValueError(
                    "seq",
                    f"{snapshot.seq} is outside {self._pruned_seq}..{self._last_seq}"
                    " (the checkpoint..last_seq)",
                )
            blob = snapshot.blob
            if not isinstance(blob, bytes) or len(blob) > log_snapshot_bytes_max:
                raise InvalidValueError(
                    "blob", f"must be bytes of at most {log_snapshot_bytes_max}"
                )
            batch.put(snapshot.key + seq_key(snapshot.seq), blob, handles.snapshots_cf)
        self._write_durably(handles, batch, "writing snapshots to")

    def latest_snapshot(self, key: bytes, at_or_before: int | None = None) -> Snapshot | None:
        """The newest snapshot for ``key`` with seq <= ``at_or_before`` (default: any).

        Raises:
            InvalidValueError: a bad key or a negative ``at_or_before``.
        """
        handles = self._live()
        _check_snapshot_key(key)
        if at_or_before is not None and not 0 <= at_or_before <= uint64_max:
            raise InvalidValueError("at_or_before", f"{at_or_before} is outside 0..2^64-1")
        ceiling = uint64_max if at_or_before is None else at_or_before
        # Backwards from key || ceiling finds the greatest stored key at or below
        # it (a lower bound would not hold backwards here: check the prefix).
        items = handles.snapshots.items(backwards=True, from_key=key + seq_key(ceiling))
        try:
            found = next(items, None)
        except Exception as error:
            raise storage_error(error, self._path, "reading a snapshot from") from None
        finally:
            del items
        if found is None:
            return None
        stored_key = cast(bytes, found[0])
        if stored_key[: len(key)] != key:
            return None
        blob = cast(bytes, found[1])
        assert len(stored_key) == len(key) + SEQ_KEY_BYTES, stored_key
        return Snapshot(key=key, seq=key_seq(stored_key[len(key) :]), blob=blob)

    # Pruning.

    def prune(self, before: int, *, archived_head: bytes) -> int:
        """Delete records ``first_seq..before-1`` once they are archived; keep a checkpoint.

        One durable write deletes the records, stores the checkpoint (record
        ``before - 1``'s seq and sha256: the link record ``before`` carries, so
        ``verify`` still proves the chain from there) and deletes the snapshots
        taken before record ``before - 1`` (nothing is left to replay from them).
        The caller checks that whoever relies on the log restarts from snapshots at
        or after ``before - 1``. Then the pruned range is compacted away on disk.

        Args:
            before: the first record kept: ``first_seq + 1..last_seq + 1``.
            archived_head: sha256 of record ``before - 1`` as the archive holds it,
                checked against the live record before anything is deleted.

        Returns:
            How many records were deleted.

        Raises:
            InvalidValueError: ``before`` out of range, or an archive head that is
                not the live record's.
            LogClosedError, LogCorruptError, LogStorageError: as ``append_batch``.
        """
        with self._lock:
            handles = self._live()
            self._check_appendable()
            first, last = self._pruned_seq + 1, self._last_seq
            if not first < before <= last + 1:
                raise InvalidValueError("before", f"{before} is outside {first + 1}..{last + 1}")
            value = handles.records.get(seq_key(before - 1))
            if value is None:
                raise LogCorruptError(before - 1, "is missing from the log")
            head = record_hash(value)
            if archived_head != head:
                raise InvalidValueError(
                    "archived_head", f"is not the sha256 of record {before - 1} in the live log"
                )
            batch = WriteBatch(raw_mode=True)
            batch.delete_range(seq_key(0), seq_key(before), handles.records_cf)
            for key in _snapshots_before(handles.snapshots, before - 1):
                batch.delete(key, handles.snapshots_cf)
            batch.put(CHECKPOINT_KEY, encode_head(before - 1, head), handles.meta_cf)
            self._write_durably(handles, batch, "pruning")
            self._pruned_seq, self._pruned_hash = before - 1, head
            try:
                handles.records.compact_range(None, seq_key(before))
            except Exception as error:
                raise storage_error(error, self._path, "compacting") from None
        return before - first

    # Integrity.

    def verify(self, from_seq: int | None = None) -> VerifyReport:
        """Walk the hash chain from ``from_seq`` to the end and check the head.

        Checks each record's key against its seq, gap-freeness, parseability,
        format version, kind against payload, canonical encoding, each
        ``prev_hash`` link, and the head in "meta" against the last record. From
        the first live record (the default), its link is checked against the
        checkpoint of a pruned prefix, and no record may lie below it.

        Raises:
            InvalidValueError: ``from_seq`` outside ``first_seq``..``last_seq + 1``.
        """
        handles = self._live()
        first = self._pruned_seq + 1
        from_seq = first if from_seq is None else from_seq
        if not first <= from_seq <= self._last_seq + 1:
            raise InvalidValueError(
                "from_seq", f"{from_seq} is outside {first}..{self._last_seq + 1}"
            )
        with self._lock:  # a consistent view of records and head
            records = handles.records.snapshot()
            meta = handles.meta.snapshot()
        try:
            start_hash = self._pruned_hash
            stray = _key_below(records, seq_key(first)) if first > 1 else None
            if stray is not None:
                return VerifyReport(
                    False, 0, stray, f"lies below the checkpoint at record {first - 1}"
                )
            if from_seq > first:
                before = _snapshot_get(records, seq_key(from_seq - 1))
                if before is None:
                    return VerifyReport(False, 0, from_seq - 1, "is missing from the log")
                start_hash = record_hash(before)
            pairs = _snapshot_items(records, seq_key(from_seq))
            head_value = _snapshot_get(meta, HEAD_KEY)
            report = verify_chain(
                pairs, from_seq=from_seq, start_hash=start_hash, head_value=head_value
            )
            if report.first_bad_seq is not None and report.first_bad_seq < first:
                # The link into the first live record broke and the record holds: the
                # checkpoint (not a record here) is what changed.
                return VerifyReport(
                    False,
                    0,
                    first,
                    f"its prev_hash differs from the checkpoint of record {first - 1}"
                    " (the checkpoint in meta was changed)",
                )
            return report
        except LogCorruptError as error:
            return VerifyReport(False, max(error.seq - from_seq, 0), error.seq, str(error))
        finally:
            del records, meta


def _snapshot_get(snapshot: DbSnapshot, key: bytes) -> bytes | None:
    # A snapshot has no get(); a missing key raises a plain Exception.
    items = snapshot.items(from_key=key)
    found = next(items, None)
    del items
    if found is None or found[0] != key:
        return None
    return cast(bytes, found[1])


def _snapshot_items(snapshot: DbSnapshot, from_key: bytes) -> Iterator[tuple[bytes, bytes]]:
    """All (key, value) of a snapshot from ``from_key`` on, fetched in chunks."""
    while True:
        try:
            items = cast(Iterator[tuple[bytes, bytes]], snapshot.items(from_key=from_key))
            chunk = list(islice(items, log_read_chunk_records))
            del items
        except Exception as error:
            seq = key_seq(from_key[:SEQ_KEY_BYTES])
            raise LogCorruptError(seq, f"RocksDB could not read it: {error}") from None
        if not chunk:
            return
        yield from chunk
        from_key = chunk[-1][0] + b"\x00"  # the smallest key after the last one


def _key_below(records: DbSnapshot, bound: bytes) -> int | None:
    """The seq of a record key below ``bound`` (a pruned record that came back), if any."""
    keys = records.keys()
    found = cast(bytes | None, next(keys, None))
    del keys
    if found is None or found >= bound:
        return None
    return key_seq(found[:SEQ_KEY_BYTES])


def _snapshots_before(snapshots: Rdict, seq: int) -> list[bytes]:
    """Keys of the snapshots (of any module) taken after fewer than ``seq`` records."""
    stale: list[bytes] = []
    keys = snapshots.keys()  # keys only: the blobs may be large
    for key in keys:
        stored = cast(bytes, key)
        if (
            len(stored) == log_snapshot_key_bytes + SEQ_KEY_BYTES
            and key_seq(stored[log_snapshot_key_bytes:]) < seq
        ):
            stale.append(stored)
    return stale


def pruned_error(pruned_seq: int, from_seq: int) -> LogPrunedError:
    """Records from ``from_seq`` on were asked for, but ``1..pruned_seq`` are archived."""
    return LogPrunedError(
        pruned_seq + 1,
        f"record {from_seq} is archived: records 1..{pruned_seq} were pruned from the live"
        f" log, which starts at {pruned_seq + 1} (give the archive: --archive FILE)",
    )


def _gap_error(records: Rdict, start: int, count: int) -> LogCorruptError:
    """Name the first record missing from ``start..start+count-1``."""
    bound = ReadOptions()
    bound.set_iterate_upper_bound(seq_key(start + count))
    keys = [cast(bytes, key) for key in records.keys(from_key=seq_key(start), read_opt=bound)]
    present = {key_seq(key) for key in keys if len(key) == SEQ_KEY_BYTES}
    for seq in range(start, start + count):
        if seq not in present:
            return LogCorruptError(seq, "is missing from the log")
    # Keys in the range are unique, so a full set means foreign keys among them.
    return LogCorruptError(start, "its range holds keys that are not sequence numbers")


def _check_batch_size(name: str, count: int) -> None:
    if not 1 <= count <= log_batch_records_max:
        raise InvalidValueError(name, f"holds {count} records, expected 1..{log_batch_records_max}")


def _check_snapshot_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != log_snapshot_key_bytes:
        raise InvalidValueError("key", f"must be {log_snapshot_key_bytes} bytes")
