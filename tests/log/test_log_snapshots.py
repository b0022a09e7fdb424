"""Snapshots of derivation state, keyed by module and sequence number."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.core.errors import InvalidValueError
from node.log import EventLog, Snapshot
from tests.log.log_samples import tagged_record

MODULE_A = hashlib.sha256(b"module a").digest()
MODULE_B = hashlib.sha256(b"module b").digest()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog.open(tmp_path / "log") as opened:
        opened.append_batch([tagged_record(str(n)) for n in range(1, 301)])
        yield opened


def test_no_snapshot(log: EventLog) -> None:
    assert log.latest_snapshot(MODULE_A) is None
    assert log.latest_snapshot(MODULE_A, at_or_before=300) is None


def test_latest_at_or_before(log: EventLog) -> None:
    for seq in (0, 100, 255, 256, 300):
        log.put_snapshot(MODULE_A, seq, f"a{seq}".encode())
    log.put_snapshot(MODULE_B, 150, b"b150")
    assert log.latest_snapshot(MODULE_A) == Snapshot(MODULE_A, 300, b"a300")
    assert log.latest_snapshot(MODULE_A, at_or_before=299) == Snapshot(MODULE_A, 256, b"a256")
    assert log.latest_snapshot(MODULE_A, at_or_before=256) == Snapshot(MODULE_A, 256, b"a256")
    assert log.latest_snapshot(MODULE_A, at_or_before=255) == Snapshot(MODULE_A, 255, b"a255")
    assert log.latest_snapshot(MODULE_A, at_or_before=99) == Snapshot(MODULE_A, 0, b"a0")
    assert log.latest_snapshot(MODULE_B) == Snapshot(MODULE_B, 150, b"b150")
    assert log.latest_snapshot(MODULE_B, at_or_before=149) is None


def test_neighbouring_keys_do_not_leak(log: EventLog) -> None:
    low = bytes(31) + b"\x01"
    high = bytes(31) + b"\x02"
    above = bytes(31) + b"\x03"
    log.put_snapshot(low, 10, b"low")
    log.put_snapshot(high, 5, b"high")
    # Seeking backwards from a key lands on its neighbour's entries: they must not count.
    assert log.latest_snapshot(above) is None
    assert log.latest_snapshot(high, at_or_before=4) is None
    assert log.latest_snapshot(low, at_or_before=9) is None
    assert log.latest_snapshot(bytes(32)) is None
    assert log.latest_snapshot(high) == Snapshot(high, 5, b"high")


def test_replacing_a_snapshot_and_empty_blob(log: EventLog) -> None:
    log.put_snapshot(MODULE_A, 7, b"first")
    log.put_snapshot(MODULE_A, 7, b"")
    assert log.latest_snapshot(MODULE_A) == Snapshot(MODULE_A, 7, b"")


def test_snapshots_survive_reopen(tmp_path: Path) -> None:
    with EventLog.open(tmp_path / "log") as log:
        log.append_batch([tagged_record("a")])
        log.put_snapshot(MODULE_A, 1, b"state" * 1000)
    with EventLog.open(tmp_path / "log") as log:
        assert log.latest_snapshot(MODULE_A) == Snapshot(MODULE_A, 1, b"state" * 1000)


@pytest.mark.parametrize(
    ("key", "seq", "blob", "field"),
    [
        (b"short", 1, b"", "key"),
        (MODULE_A + b"x", 1, b"", "key"),
        ("text" * 8, 1, b"", "key"),
        (MODULE_A, -1, b"", "seq"),
        (MODULE_A, 301, b"", "seq"),
        (MODULE_A, 1, "not bytes", "blob"),
    ],
)
def test_put_snapshot_refuses_bad_arguments(
    log: EventLog, key: bytes, seq: int, blob: bytes, field: str
) -> None:
    with pytest.raises(InvalidValueError) as raised:
        log.put_snapshot(key, seq, blob)
    assert raised.value.field == field
    assert log.latest_snapshot(MODULE_A) is None


def test_latest_snapshot_refuses_bad_arguments(log: EventLog) -> None:
    with pytest.raises(InvalidValueError, match="key"):
        log.latest_snapshot(b"short")
    with pytest.raises(InvalidValueError, match="at_or_before"):
        log.latest_snapshot(MODULE_A, at_or_before=-1)


def test_snapshots_written_together_replace_older_ones(log: EventLog) -> None:
    log.put_snapshots([Snapshot(MODULE_A, 100, b"a100"), Snapshot(MODULE_B, 100, b"b100")])
    log.put_snapshots(
        [Snapshot(MODULE_A, 200, b"a200"), Snapshot(MODULE_B, 200, b"b200")],
        delete=[(MODULE_B, 100)],
    )
    assert log.latest_snapshot(MODULE_A, at_or_before=150) == Snapshot(MODULE_A, 100, b"a100")
    assert log.latest_snapshot(MODULE_B, at_or_before=150) is None
    assert log.latest_snapshot(MODULE_B) == Snapshot(MODULE_B, 200, b"b200")


def test_snapshots_written_together_are_checked_before_anything_is_written(
    log: EventLog,
) -> None:
    with pytest.raises(InvalidValueError, match="seq"):
        log.put_snapshots([Snapshot(MODULE_A, 10, b"ok"), Snapshot(MODULE_B, 301, b"late")])
    with pytest.raises(InvalidValueError, match="key"):
        log.put_snapshots([Snapshot(MODULE_A, 10, b"ok")], delete=[(b"short", 1)])
    assert log.latest_snapshot(MODULE_A) is None
