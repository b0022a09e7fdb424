"""Keep a derivation module's state in step with the event log.

The module's state is never stored except as snapshots in the log's database,
keyed by the module's sha256 and the last sequence number folded. Starting
restores the newest matching snapshot and replays only the tail; a trap
discards the instance and rebuilds it from a snapshot; the log itself is only
ever read (snapshots aside).
"""

from __future__ import annotations

import logging
import operator
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Protocol, TypeVar

from node.core.constants import (
    derive_batch_bytes_max,
    derive_batch_records_max,
    derive_pipeline_records_min,
    derive_prefetch_batches_max,
    derive_snapshot_interval_records,
    derive_switch_interval_s,
)
from node.core.errors import DeriveError
from node.derive._errors import ModuleTrapError, RecordRejectedError
from node.derive._host import DeriveInstance, DeriveModule, Limits, frame_records
from node.derive._tables import RowDecoder, TableState
from node.proto import derive_pb2

if TYPE_CHECKING:
    from node.metrics import Metrics

logger = logging.getLogger("node.derive")


class SnapshotLike(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def blob(self) -> bytes: ...


class LogSource(Protocol):
    """What the deriver needs of ``node.log.EventLog``."""

    @property
    def last_seq(self) -> int: ...

    def read_raw(
        self, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[tuple[int, bytes]]: ...

    def put_snapshot(self, key: bytes, seq: int, blob: bytes) -> None: ...

    def latest_snapshot(
        self, key: bytes, at_or_before: int | None = None
    ) -> SnapshotLike | None: ...


def _batches(
    log: LogSource, first: int, last: int, records_max: int
) -> Generator[tuple[int, bytes], None, None]:
    """(last seq, framed batch) covering ``first..last``, bounded in records and bytes."""
    source = log.read_raw(first, last)
    while True:
        # Slicing and mapping run in C: per-record Python work is the bottleneck here.
        chunk = list(islice(source, records_max))
        if not chunk:
            return
        raws = list(map(_second, chunk))
        if sum(map(len, raws)) + 4 * len(raws) <= derive_batch_bytes_max:
            yield chunk[-1][0], frame_records(raws)
            continue
        start = size = 0
        for index, raw in enumerate(raws):
            if index > start and size + len(raw) + 4 > derive_batch_bytes_max:
                yield chunk[index - 1][0], frame_records(raws[start:index])
                start, size = index, 0
            size += len(raw) + 4
        yield chunk[-1][0], frame_records(raws[start:])


_second = operator.itemgetter(1)


def fold_range(
    instance: DeriveInstance,
    log: LogSource,
    first: int,
    last: int,
    *,
    batch_records_max: int = derive_batch_records_max,
) -> int:
    """Fold records ``first..last`` into ``instance``; returns the last seq folded.

    Long ranges read and frame the next batches on a helper thread while the module
    folds the current one (a wasm call releases the GIL); the order is unchanged.
    """
    folded = first - 1
    batches = _batch_source(log, first, last, batch_records_max)
    try:
        for batch_last, batch in batches:
            instance.apply_batch(batch)
            folded = batch_last
    finally:
        batches.close()
    return folded


def read_batches(
    log: LogSource, first: int, last: int, *, batch_records_max: int = derive_batch_records_max
) -> Generator[tuple[int, bytes], None, None]:
    """(last seq, framed batch) covering records ``first..last`` in order, bounded in
    records and bytes; long ranges are read ahead on a thread. Close the generator
    when stopping early."""
    return _batch_source(log, first, last, batch_records_max)


def _batch_source(
    log: LogSource, first: int, last: int, records_max: int
) -> Generator[tuple[int, bytes], None, None]:
    """Batches of ``first..last``, read ahead on a thread when the range is long."""
    batches = _batches(log, first, last, records_max)
    if last - first + 1 < derive_pipeline_records_min:
        return batches
    return _prefetched(batches)


_Answer = TypeVar("_Answer")
_END = object()
# apply_batch's "out of memory" code (docs/derive-abi.md): the state is undefined.
CODE_OUT_OF_MEMORY = 6


_switching_lock = threading.Lock()
_switching_users = 0
_switching_saved = 0.0


def _fast_switching(change: int) -> None:
    """Shorten the GIL switch interval while a read-ahead thread runs.

    Every wasm call and memory copy releases the GIL; with the default 5 ms
    interval the folding thread would wait that long to get it back from the
    reader at each call. The previous interval is restored when the last
    read-ahead ends.
    """
    global _switching_users, _switching_saved
    with _switching_lock:
        if change > 0 and _switching_users == 0:
            _switching_saved = sys.getswitchinterval()
            sys.setswitchinterval(min(_switching_saved, derive_switch_interval_s))
        _switching_users += change
        assert _switching_users >= 0
        if change < 0 and _switching_users == 0:
            sys.setswitchinterval(_switching_saved)


def _prefetched(
    source: Iterator[tuple[int, bytes]],
) -> Generator[tuple[int, bytes], None, None]:
    """``source`` produced on a helper thread, a bounded number of items ahead."""
    ready: queue.Queue[object] = queue.Queue(maxsize=derive_prefetch_batches_max)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_END)
        except BaseException as error:  # handed to the consumer, which re-raises it
            ready.put(error)

    producer = threading.Thread(target=produce, name="derive-prefetch", daemon=True)
    producer.start()
    _fast_switching(+1)
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        _fast_switching(-1)
        stop.set()
        while producer.is_alive():
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                continue
        producer.join()


def instance_at(
    module: DeriveModule,
    log: LogSource,
    seq: int | None,
    limits: Limits | None = None,
    *,
    batch_records_max: int = derive_batch_records_max,
) -> tuple[DeriveInstance, int]:
    """A fresh instance holding the state after records ``1..seq`` (default: all).

    Starts from the newest snapshot of this module at or before ``seq`` that the
    module accepts, and replays the rest. Returns the instance and its cursor.
    """
    target = log.last_seq if seq is None else min(seq, log.last_seq)
    instance = DeriveInstance(module, limits)
    start = 0
    snapshot = log.latest_snapshot(module.sha256, at_or_before=target)
    if snapshot is not None:
        try:
            instance.restore(snapshot.blob)
            start = snapshot.seq
        except RecordRejectedError as error:
            # A snapshot this module refuses is rebuilt from the log instead, and said so.
            logger.warning(
                "%s: snapshot at %d refused, replaying from the start: %s",
                module.name,
                snapshot.seq,
                error,
            )
            instance = DeriveInstance(module, limits)
    folded = fold_range(instance, log, start + 1, target, batch_records_max=batch_records_max)
    return instance, folded


def tables_at(
    module: DeriveModule,
    log: LogSource,
    seq: int | None,
    limits: Limits | None = None,
) -> tuple[DeriveInstance, int, TableState]:
    """The tables of a module with tables after records ``1..seq`` (default: all), in
    memory: a fresh instance restored from the module's newest snapshot at or before
    ``seq`` (its first answer holds every row), then the rest folded, each batch's
    changes applied. Returns the instance, its cursor and the tables.

    Raises:
        RecordRejectedError, ModuleTrapError, BadRowsError: the module failed.
    """
    assert module.schema is not None, f"{module.name} has no tables"
    target = log.last_seq if seq is None else min(seq, log.last_seq)
    decoder = RowDecoder(module.schema)
    tables = TableState(module.schema)
    instance, start = _restored_with_tables(module, log, target, limits)
    tables.apply(decoder.decode(instance.apply_batch(b"")))
    batches = _batch_source(log, start + 1, target, derive_batch_records_max)
    try:
        for _, batch in batches:
            tables.apply(decoder.decode(instance.apply_batch(batch)))
    finally:
        batches.close()
    return instance, target, tables


def _restored_with_tables(
    module: DeriveModule, log: LogSource, target: int, limits: Limits | None
) -> tuple[DeriveInstance, int]:
    instance = DeriveInstance(module, limits)
    instance.describe_tables()
    snapshot = log.latest_snapshot(module.sha256, at_or_before=target)
    if snapshot is not None:
        try:
            instance.restore(snapshot.blob)
            return instance, snapshot.seq
        except RecordRejectedError as error:
            logger.warning(
                "%s: snapshot at %d refused, replaying: %s", module.name, snapshot.seq, error
            )
            instance = DeriveInstance(module, limits)
            instance.describe_tables()
    return instance, 0


class Deriver:
    """A module's live state over one event log, with snapshots and trap recovery."""

    def __init__(
        self,
        log: LogSource,
        module: DeriveModule,
        *,
        limits: Limits | None = None,
        snapshot_interval_records: int = derive_snapshot_interval_records,
        batch_records_max: int = derive_batch_records_max,
        at_seq: int | None = None,
    ) -> None:
        """Restore the newest snapshot of ``module`` (no replay yet: see ``catch_up``).

        With ``at_seq`` the state starts after records ``1..at_seq`` instead (the newest
        snapshot at or before it, then a replay up to it): the engine restores the
        module where its own snapshot stands.
        """
        assert snapshot_interval_records > 0
        assert batch_records_max > 0
        self.log = log
        self.module = module
        self.limits = limits
        self.snapshot_interval_records = snapshot_interval_records
        self.batch_records_max = batch_records_max
        if at_seq is None:
            snapshot = log.latest_snapshot(module.sha256)
            at_seq = snapshot.seq if snapshot else 0
        self._instance, self._cursor = instance_at(
            module, log, at_seq, limits, batch_records_max=batch_records_max
        )
        self._snapshot_seq = self._cursor
        self._durable_seq = self._cursor  # records after it are folded but not yet logged
        self.metrics: Metrics | None = None  # fold time and records folded, when set

    @property
    def cursor(self) -> int:
        """The last sequence number folded."""
        return self._cursor

    @property
    def instance(self) -> DeriveInstance:
        return self._instance

    def catch_up(self, to_seq: int | None = None) -> int:
        """Fold every record after the cursor (up to ``to_seq``); returns how many.

        Raises:
            RecordRejectedError: the module refused a record; the cursor stops before it.
            ModuleTrapError: a call trapped; the state was rebuilt as it was before the
                failing batch.
        """
        assert not self.tentative, "confirm or roll back what was folded ahead first"
        target = self.log.last_seq if to_seq is None else min(to_seq, self.log.last_seq)
        before = self._cursor
        started = time.perf_counter()
        batches = _batch_source(self.log, self._cursor + 1, target, self.batch_records_max)
        try:
            for batch_last, batch in batches:
                self._apply(batch)
                self._cursor = self._durable_seq = batch_last
                if self._cursor - self._snapshot_seq >= self.snapshot_interval_records:
                    self.snapshot()
        finally:
            batches.close()
        self._count_fold(self._cursor - before, started)
        return self._cursor - before

    def _count_fold(self, records: int, started: float) -> None:
        metrics = self.metrics
        if metrics is not None and records:
            metrics.fold_seconds.observe(time.perf_counter() - started)
            metrics.derive_records += records

    @property
    def tentative(self) -> bool:
        """Whether records not yet in the log are folded (see ``fold_ahead``)."""
        return self._cursor > self._durable_seq

    def fold_ahead(self, first: int, values: Sequence[bytes]) -> None:
        """Fold records that the log has not written yet: records ``first..`` in their
        stored form, numbered after the cursor. ``confirm`` once they are durable, or
        ``roll_back`` if their write failed.

        Raises:
            RecordRejectedError, ModuleTrapError: as ``catch_up``; call ``roll_back``.
        """
        assert first == self._cursor + 1, (first, self._cursor)
        started = time.perf_counter()
        start = 0
        while start < len(values):
            end, size = start, 0
            while end < len(values) and end - start < self.batch_records_max:
                size += len(values[end]) + 4
                if end > start and size > derive_batch_bytes_max:
                    break
                end += 1
            self._instance.apply_batch(frame_records(values[start:end]))
            self._cursor = first + end - 1
            start = end
        self._count_fold(len(values), started)

    def confirm(self) -> None:
        """The records folded ahead are in the log now."""
        assert self._cursor <= self.log.last_seq, (self._cursor, self.log.last_seq)
        self._durable_seq = self._cursor

    def roll_back(self) -> None:
        """Forget the records folded ahead: the state is rebuilt as the log holds it
        (the newest snapshot, then a replay)."""
        self._cursor = self._durable_seq
        self._instance, cursor = instance_at(
            self.module,
            self.log,
            self._cursor,
            self.limits,
            batch_records_max=self.batch_records_max,
        )
        assert cursor == self._cursor, (cursor, self._cursor)

    def snapshot_blob(self) -> bytes:
        """The serialised state at the cursor (the caller stores it with its own).

        Raises:
            ModuleTrapError: the call trapped; the state was rebuilt.
        """
        assert not self.tentative, "a snapshot holds durable records only"
        try:
            blob = self._instance.snapshot()
        except ModuleTrapError:
            self._recover()
            raise
        self._snapshot_seq = self._cursor
        return blob

    def _apply(self, batch: bytes) -> None:
        try:
            self._instance.apply_batch(batch)
        except ModuleTrapError:
            self._recover()
            raise
        except RecordRejectedError as error:
            if error.code == CODE_OUT_OF_MEMORY:  # the state is undefined: as a trap
                self._recover()
            else:
                self._cursor = self._durable_seq = self.query_cursor()
            raise

    def snapshot(self) -> None:
        """Store the current state in the log under (module sha256, cursor)."""
        try:
            blob = self._instance.snapshot()
        except ModuleTrapError:
            self._recover()
            raise
        self.log.put_snapshot(self.module.sha256, self._cursor, blob)
        self._snapshot_seq = self._cursor

    def _recover(self) -> None:
        """Replace a trapped instance: newest snapshot, then replay to the cursor.

        Records folded ahead of the log are dropped (the caller rolls its step back).
        """
        self.roll_back()

    def query(self, request: derive_pb2.Query) -> derive_pb2.QueryResult:
        """Ask the module; a trap is recovered from and re-raised."""
        return self._recovering(lambda: self._instance.query(request))

    def channel(self, channel_id: bytes) -> derive_pb2.ChannelView | None:
        """One channel's view, or None when the module knows no such channel."""
        return self._recovering(lambda: channel_view(self._instance, channel_id))

    def channels(self) -> list[derive_pb2.ChannelView]:
        """Every channel's view, in ascending id order."""
        return self._recovering(lambda: list(channel_views(self._instance)))

    def totals(self) -> derive_pb2.Totals:
        """Node-wide totals."""
        return self._recovering(lambda: totals(self._instance))

    def _recovering(self, call: Callable[[], _Answer]) -> _Answer:
        try:
            return call()
        except ModuleTrapError:
            self._recover()
            raise

    def query_cursor(self) -> int:
        result = self._instance.query(derive_pb2.Query(get_cursor=derive_pb2.GetCursor()))
        if result.status != derive_pb2.QUERY_STATUS_OK or not result.HasField("cursor"):
            raise DeriveError(f"{self.module.name} does not answer get_cursor: {result.detail}")
        return result.cursor.last_seq

    def state_at(self, seq: int) -> DeriveInstance:
        """Time travel: a separate instance holding the state after records ``1..seq``."""
        instance, _ = instance_at(
            self.module, self.log, seq, self.limits, batch_records_max=self.batch_records_max
        )
        return instance


def channel_view(instance: DeriveInstance, channel_id: bytes) -> derive_pb2.ChannelView | None:
    """The view of one channel, or None when the module knows no such channel."""
    result = instance.query(
        derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=channel_id))
    )
    if result.status == derive_pb2.QUERY_STATUS_NOT_FOUND:
        return None
    _expect_ok(result, "get_channel")
    return result.channel


def channel_views(instance: DeriveInstance) -> Iterator[derive_pb2.ChannelView]:
    """Every channel, in ascending id order, page by page."""
    after = b""
    while True:
        result = instance.query(
            derive_pb2.Query(list_channels=derive_pb2.ListChannels(after=after))
        )
        _expect_ok(result, "list_channels")
        yield from result.channels.channels
        after = result.channels.next_after
        if not after:
            return


def totals(instance: DeriveInstance) -> derive_pb2.Totals:
    """Node-wide totals."""
    result = instance.query(derive_pb2.Query(get_totals=derive_pb2.GetTotals()))
    _expect_ok(result, "get_totals")
    return result.totals


def _expect_ok(result: derive_pb2.QueryResult, what: str) -> None:
    if result.status != derive_pb2.QUERY_STATUS_OK:
        name = derive_pb2.QueryStatus.Name(result.status)
        raise DeriveError(f"{what} answered {name}: {result.detail}")
