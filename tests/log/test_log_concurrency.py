"""Concurrent appenders (threads, and trio tasks through trio.to_thread) get
gap-free, non-overlapping ranges, every record exactly once, and a valid chain."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from node.log import EventLog, SeqRange
from node.proto import log_pb2
from tests.log.log_samples import tagged_record

APPENDERS = 4
BATCHES_EACH = 25


def batches_for(appender: int) -> list[list[log_pb2.LogRecord]]:
    rng = random.Random(appender)
    return [
        [tagged_record(f"{appender}/{batch}/{index}") for index in range(rng.randrange(1, 40))]
        for batch in range(BATCHES_EACH)
    ]


def payload_batches_for(appender: int) -> list[list[bytes]]:
    return [[r.SerializeToString() for r in batch] for batch in batches_for(appender)]


def check_outcome(log: EventLog, results: dict[int, list[SeqRange]]) -> None:
    """Each appender's batches landed whole, in its own order, each record once."""
    stored = {r.seq: r.rejected.reason for r in log.read()}
    total = sum(len(batch) for a in results for batch in batches_for(a))
    assert sorted(stored) == list(range(1, total + 1))
    assert len(set(stored.values())) == total
    ranges = sorted((r for rs in results.values() for r in rs), key=lambda r: r.first)
    assert [r.first for r in ranges] == [1] + [r.last + 1 for r in ranges[:-1]]
    for appender, appended in results.items():
        assert [r.first for r in appended] == sorted(r.first for r in appended)
        for seq_range, batch in zip(appended, batches_for(appender), strict=True):
            tags = [stored[seq] for seq in range(seq_range.first, seq_range.last + 1)]
            assert tags == [record.rejected.reason for record in batch]
    assert log.verify().ok
    assert log.verify().records_checked == total


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog.open(tmp_path / "log") as opened:
        yield opened


def test_threads_append_gap_free(log: EventLog) -> None:
    results: dict[int, list[SeqRange]] = {appender: [] for appender in range(APPENDERS)}
    start = threading.Barrier(APPENDERS)

    def appender(number: int) -> None:
        start.wait()
        for index, batch in enumerate(batches_for(number)):
            if index % 2:
                payloads = payload_batches_for(number)[index]
                results[number].append(log.append_payloads(payloads, time_ms=0))
            else:
                results[number].append(log.append_batch(batch))

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(APPENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    check_outcome(log, results)


async def test_trio_tasks_append_gap_free_through_threads(log: EventLog) -> None:
    results: dict[int, list[SeqRange]] = {appender: [] for appender in range(APPENDERS)}

    async def appender(number: int) -> None:
        for batch in batches_for(number):
            seq_range = await trio.to_thread.run_sync(log.append_batch, batch)
            results[number].append(seq_range)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for number in range(APPENDERS):
            nursery.start_soon(appender, number)
    check_outcome(log, results)


def test_readers_beside_appenders_see_consistent_prefixes(log: EventLog) -> None:
    stop = threading.Event()
    failures: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            last = log.last_seq
            seqs = [seq for seq, _ in log.read_raw(1, last)]
            if seqs != list(range(1, last + 1)):
                failures.append(f"read 1..{last} gave {len(seqs)} records")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for batch in batches_for(0):
            log.append_batch(batch)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert failures == []
    assert log.verify().ok
