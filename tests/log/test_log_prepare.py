"""Two-phase appends: records prepared after the head, folded by the writer, then
committed in one write (or dropped, leaving the log as it was)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.core.errors import InvalidValueError, LogError
from node.log import EventLog, SeqRange
from tests.log.log_samples import tagged_record


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog.open(tmp_path / "log") as opened:
        opened.append_batch([tagged_record("first")])
        yield opened


def test_prepared_then_committed_equals_appended(tmp_path: Path, log: EventLog) -> None:
    records = [tagged_record(f"r{n}") for n in range(5)]
    prepared = log.prepare(records[:2])
    prepared = log.prepare(records[2:], after=prepared)
    assert (prepared.first, prepared.last, len(prepared)) == (2, 6, 5)
    assert log.last_seq == 1  # nothing written yet
    assert log.commit(prepared) == SeqRange(2, 6)
    with EventLog.open(tmp_path / "other") as other:
        other.append_batch([tagged_record("first")])
        other.append_batch(records)
        assert [v for _, v in other.read_raw()] == [v for _, v in log.read_raw()]
        assert other.head_hash == log.head_hash == prepared.last_hash
    assert [value for _, value in log.read_raw(2)] == list(prepared.values)
    assert log.verify().ok


def test_a_prepared_batch_that_is_not_committed_leaves_the_log_unchanged(log: EventLog) -> None:
    head = log.head_hash
    log.prepare([tagged_record("dropped")])
    assert (log.last_seq, log.head_hash) == (1, head)
    assert log.commit(log.prepare([])) is None  # nothing to write
    log.append_batch([tagged_record("second")])
    assert [r.rejected.reason for r in log.read()] == ["first", "second"]


def test_a_batch_prepared_on_an_old_head_is_refused(log: EventLog) -> None:
    stale = log.prepare([tagged_record("stale")])
    log.append_batch([tagged_record("meanwhile")])
    with pytest.raises(LogError, match="cannot follow record 2"):
        log.commit(stale)
    assert log.last_seq == 2
    assert log.verify().ok


def test_a_bad_record_is_refused_when_prepared(log: EventLog) -> None:
    bad = tagged_record("bad")
    bad.seq = 9
    with pytest.raises(InvalidValueError, match=r"records\[1\]"):
        log.prepare([tagged_record("fine"), bad])
