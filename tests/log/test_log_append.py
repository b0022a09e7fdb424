"""Appending, reading, opening and closing a real RocksDB event log."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from node.core.constants import log_batch_records_max, log_read_chunk_records
from node.core.errors import (
    InvalidValueError,
    LogBusyError,
    LogClosedError,
    LogCorruptError,
    LogError,
    LogNotFoundError,
    LogStorageError,
)
from node.log import KIND_BY_CASE, EventLog, SeqRange
from node.log._store import storage_error
from node.proto import log_pb2
from tests.log.log_samples import raw_column, sample_records, tagged_record


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def log(log_path: Path) -> Iterator[EventLog]:
    with EventLog.open(log_path) as opened:
        yield opened


def test_empty_log(log: EventLog) -> None:
    assert log.last_seq == 0
    assert log.head_hash == bytes(32)
    assert list(log.read()) == []
    assert list(log.read_raw()) == []
    assert log.verify().ok


def test_append_fills_the_header_and_chains(log: EventLog) -> None:
    records = sample_records(10, seed=1, time_ms=1_764_000_000_000)
    assert log.append_batch(records[:4]) == SeqRange(1, 4)
    assert log.append_batch(records[4:]) == SeqRange(5, 10)
    stored = list(log.read())
    raw = list(log.read_raw())
    prev = bytes(32)
    for seq, (given, record, (raw_seq, value)) in enumerate(
        zip(records, stored, raw, strict=True), start=1
    ):
        case = given.WhichOneof("payload")
        assert case is not None
        assert record.seq == raw_seq == seq
        assert record.format_version == 1
        assert record.kind == KIND_BY_CASE[case]
        assert record.prev_hash == prev
        assert record.time_ms == 1_764_000_000_000
        assert getattr(record, case) == getattr(given, case)
        assert record.SerializeToString() == value
        prev = hashlib.sha256(value).digest()
    assert log.last_seq == 10
    assert log.head_hash == prev


def test_append_does_not_modify_the_records_given(log: EventLog) -> None:
    records = sample_records(3, seed=2)
    before = [record.SerializeToString() for record in records]
    log.append_batch(records)
    assert [record.SerializeToString() for record in records] == before


def test_append_payloads_stores_the_same_bytes_as_append_batch(tmp_path: Path) -> None:
    records = sample_records(25, seed=3, time_ms=42)
    with EventLog.open(tmp_path / "a") as by_record:
        by_record.append_batch(records)
        expected = list(by_record.read_raw())
    payloads = []
    for record in records:
        bare = log_pb2.LogRecord()
        bare.CopyFrom(record)
        bare.ClearField("time_ms")
        payloads.append(bare.SerializeToString())
    with EventLog.open(tmp_path / "b") as by_payload:
        assert by_payload.append_payloads(payloads, time_ms=42) == SeqRange(1, 25)
        assert list(by_payload.read_raw()) == expected
        assert by_payload.head_hash == hashlib.sha256(expected[-1][1]).digest()


def test_read_ranges_are_inclusive_and_clamped(log: EventLog) -> None:
    count = 2 * log_read_chunk_records + 7  # several chunks
    log.append_batch([tagged_record(str(seq)) for seq in range(1, count + 1)])
    assert [seq for seq, _ in log.read_raw()] == list(range(1, count + 1))
    assert [r.seq for r in log.read(5, 9)] == [5, 6, 7, 8, 9]
    assert [r.rejected.reason for r in log.read(count - 1)] == [str(count - 1), str(count)]
    assert [seq for seq, _ in log.read_raw(count, count + 50)] == [count]
    assert list(log.read(count + 1)) == []
    assert list(log.read(9, 5)) == []
    assert list(log.read(3, 0)) == []
    chunk_edge = log_read_chunk_records
    assert [r.seq for r in log.read(chunk_edge - 1, chunk_edge + 1)] == [
        chunk_edge - 1,
        chunk_edge,
        chunk_edge + 1,
    ]


def test_read_sees_only_records_appended_before_the_call(log: EventLog) -> None:
    log.append_batch([tagged_record("a"), tagged_record("b")])
    reader = log.read()
    log.append_batch([tagged_record("c")])
    assert [r.rejected.reason for r in reader] == ["a", "b"]


@pytest.mark.parametrize(("from_seq", "to_seq"), [(0, None), (-1, 3), (1, -1)])
def test_read_refuses_bad_ranges(log: EventLog, from_seq: int, to_seq: int | None) -> None:
    with pytest.raises(InvalidValueError):
        log.read(from_seq, to_seq)
    with pytest.raises(InvalidValueError):
        log.read_raw(from_seq, to_seq)


def test_batch_size_limits(log: EventLog) -> None:
    with pytest.raises(InvalidValueError, match=r"records: holds 0 records"):
        log.append_batch([])
    with pytest.raises(InvalidValueError, match=r"payloads: holds 0 records"):
        log.append_payloads([], time_ms=1)
    too_many = [tagged_record("x")] * (log_batch_records_max + 1)
    with pytest.raises(InvalidValueError, match=str(log_batch_records_max)):
        log.append_batch(too_many)
    assert log.append_batch(too_many[:log_batch_records_max]) == SeqRange(1, log_batch_records_max)


def test_bad_records_name_their_index_and_append_nothing(log: EventLog) -> None:
    good = tagged_record("ok")
    with pytest.raises(InvalidValueError, match=r"records\[1\]: record.payload: no payload"):
        log.append_batch([good, log_pb2.LogRecord(time_ms=3)])
    with pytest.raises(InvalidValueError, match=r"records\[0\]: record: seq"):
        log.append_batch([log_pb2.LogRecord(seq=9, rejected=log_pb2.Rejected())])
    payload = good.SerializeToString()
    with pytest.raises(InvalidValueError, match=r"payloads\[2\]: payload"):
        log.append_payloads([payload, payload, b"\x08\x01"], time_ms=1)
    with pytest.raises(InvalidValueError, match=r"payloads\[1\]: is not bytes"):
        log.append_payloads([payload, "text"], time_ms=1)  # type: ignore[list-item]
    with pytest.raises(InvalidValueError, match="time_ms"):
        log.append_payloads([payload], time_ms=-5)
    assert log.last_seq == 0
    assert list(log.read()) == []


def test_records_survive_reopen(log_path: Path) -> None:
    with EventLog.open(log_path) as log:
        log.append_batch(sample_records(30, seed=4))
        head = log.head_hash
        stored = list(log.read_raw())
    with EventLog.open(log_path, create=False) as log:
        assert log.path == log_path
        assert log.last_seq == 30
        assert log.head_hash == head
        assert list(log.read_raw()) == stored
        assert log.append_batch([tagged_record("next")]) == SeqRange(31, 31)
        assert log.verify().ok


def test_closed_log_refuses_every_call(log_path: Path) -> None:
    log = EventLog.open(log_path)
    log.append_batch([tagged_record("a")])
    reader = log.read_raw()
    log.close()
    log.close()  # idempotent
    assert log.closed
    payload = tagged_record("b").SerializeToString()
    calls: list[Callable[[], object]] = [
        lambda: log.last_seq,
        lambda: log.head_hash,
        lambda: log.append_batch([tagged_record("b")]),
        lambda: log.append_payloads([payload], time_ms=1),
        lambda: list(log.read()),
        lambda: list(log.read_raw()),
        lambda: list(reader),
        lambda: log.verify(),
        lambda: log.put_snapshot(bytes(32), 0, b""),
        lambda: log.latest_snapshot(bytes(32)),
    ]
    for call in calls:
        with pytest.raises(LogClosedError, match=str(log_path)):
            call()
    assert "closed" in repr(log)


def test_close_releases_the_lock_even_with_a_paused_reader(log_path: Path) -> None:
    log = EventLog.open(log_path)
    log.append_batch([tagged_record(str(n)) for n in range(log_read_chunk_records + 5)])
    reader = log.read_raw()
    assert next(reader)[0] == 1
    log.close()
    with EventLog.open(log_path) as again:
        assert again.last_seq == log_read_chunk_records + 5
    with pytest.raises(LogClosedError):
        list(reader)


def test_second_handle_in_process_is_busy(log: EventLog, log_path: Path) -> None:
    with pytest.raises(LogBusyError, match=str(log_path)) as raised:
        EventLog.open(log_path)
    assert "already open in this process" in str(raised.value)
    log.append_batch([tagged_record("still fine")])
    assert log.last_seq == 1


OPEN_IN_CHILD = textwrap.dedent(
    """
    import sys
    from node.core.errors import LogBusyError
    from node.log import EventLog
    try:
        EventLog.open(sys.argv[1])
    except LogBusyError as error:
        print("busy:", error)
        sys.exit(3)
    print("opened")
    """
)


@pytest.mark.slow
def test_second_process_is_busy(log: EventLog, log_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", OPEN_IN_CHILD, str(log_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 3, child.stderr
    assert f"busy: event log {log_path} is in use by another process" in child.stdout


@pytest.mark.slow
def test_parent_is_busy_while_a_child_process_holds_the_log(log_path: Path) -> None:
    EventLog.open(log_path).close()
    hold = "import sys; from node.log import EventLog; l = EventLog.open(sys.argv[1]);"
    hold += " print('ready', flush=True); sys.stdin.read()"
    with subprocess.Popen(
        [sys.executable, "-c", hold, str(log_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(LogBusyError, match=f"{log_path} is in use by another process"):
            EventLog.open(log_path)
        child.stdin.close()
        assert child.wait(timeout=30) == 0
    with EventLog.open(log_path) as log:
        assert log.last_seq == 0


def test_read_only_handle_beside_a_writer(log: EventLog, log_path: Path) -> None:
    log.append_batch([tagged_record("a"), tagged_record("b")])
    with EventLog.open(log_path, read_only=True) as reader:
        assert reader.last_seq == 2
        assert [r.rejected.reason for r in reader.read()] == ["a", "b"]
        assert reader.verify().ok
        with pytest.raises(LogError, match="read-only"):
            reader.append_batch([tagged_record("c")])
        with pytest.raises(LogError, match="read-only"):
            reader.put_snapshot(bytes(32), 0, b"")


def test_missing_log_is_not_created_unless_asked(tmp_path: Path) -> None:
    options: list[dict[str, bool]] = [{"create": False}, {"read_only": True}]
    for kwargs in options:
        with pytest.raises(LogNotFoundError, match=str(tmp_path / "nothing")):
            EventLog.open(tmp_path / "nothing", **kwargs)
    assert not (tmp_path / "nothing").exists()


def test_foreign_rocksdb_is_refused(tmp_path: Path) -> None:
    options = Options()  # rocksdict's default mode: a custom comparator
    options.create_if_missing(True)
    foreign = Rdict(str(tmp_path / "foreign"), options)
    foreign["key"] = "value"
    foreign.close()
    del foreign
    with pytest.raises(LogStorageError, match="not an scnode event log"):
        EventLog.open(tmp_path / "foreign")


def test_unknown_format_version_is_refused(log_path: Path) -> None:
    EventLog.open(log_path).close()
    with raw_column(log_path, "meta") as meta:
        meta[b"format_version"] = (2).to_bytes(4, "big")
    with pytest.raises(LogStorageError, match="log format 2"):
        EventLog.open(log_path)
    # The refused open released RocksDB: the log can be repaired and reopened.
    with raw_column(log_path, "meta") as meta:
        meta[b"format_version"] = (1).to_bytes(4, "big")
    with EventLog.open(log_path) as log:
        assert log.last_seq == 0


def test_a_log_with_a_damaged_head_opens_but_refuses_appends(log_path: Path) -> None:
    with EventLog.open(log_path) as log:
        log.append_batch([tagged_record("a"), tagged_record("b"), tagged_record("c")])
    with raw_column(log_path, "records") as records:
        del records[(3).to_bytes(8, "big")]
    with EventLog.open(log_path) as log:
        assert [r.seq for r in log.read(1, 2)] == [1, 2]
        with pytest.raises(LogCorruptError, match="record 3: last record is 2, head says 3"):
            log.append_batch([tagged_record("d")])
        with pytest.raises(LogCorruptError, match="record 3: is missing"):
            list(log.read())
        assert log.verify().first_bad_seq == 3


def test_a_log_without_its_format_version_refuses_appends(log_path: Path) -> None:
    with EventLog.open(log_path) as log:
        log.append_batch([tagged_record("a")])
        assert "last_seq=1" in repr(log)
    with raw_column(log_path, "meta") as meta:
        del meta[b"format_version"]
    with EventLog.open(log_path) as log, pytest.raises(LogCorruptError, match="format_version"):
        log.append_batch([tagged_record("b")])


@pytest.mark.parametrize(
    ("stored", "problem"),
    [(b"\xff\xff", "does not parse"), (tagged_record("x").SerializeToString(), "holds seq 0")],
)
def test_read_refuses_a_bad_stored_record(log_path: Path, stored: bytes, problem: str) -> None:
    with EventLog.open(log_path) as log:
        log.append_batch([tagged_record("a"), tagged_record("b"), tagged_record("c")])
    with raw_column(log_path, "records") as records:
        records[(2).to_bytes(8, "big")] = stored
    with EventLog.open(log_path) as log:
        assert [seq for seq, _ in log.read_raw()] == [1, 2, 3]
        with pytest.raises(LogCorruptError, match=f"record 2: {problem}"):
            list(log.read())


ROCKSDB_ERRORS: list[tuple[str, type[LogError], str]] = [
    (
        "IO error: While lock file: /x/LOCK: Resource temporarily unavailable",
        LogBusyError,
        "in use by another process",
    ),
    (
        "IO error: lock hold by current process, acquire time 1: /x/LOCK: No locks available",
        LogBusyError,
        "already open in this process",
    ),
    (
        "Invalid argument: /x/CURRENT: does not exist (create_if_missing is false)",
        LogNotFoundError,
        "no event log",
    ),
    (
        "Invalid argument: leveldb.BytewiseComparator: does not match existing comparator x",
        LogStorageError,
        "not an scnode event log",
    ),
    ("IO error: No space left on device", LogStorageError, "RocksDB failed while appending to"),
]


@pytest.mark.parametrize(("text", "error", "message"), ROCKSDB_ERRORS)
def test_rocksdb_errors_are_translated(text: str, error: type[LogError], message: str) -> None:
    translated = storage_error(Exception(text), Path("/x"), "appending to")
    assert type(translated) is error
    assert message in str(translated)
    assert "/x" in str(translated)


def test_seq_range() -> None:
    seq_range = SeqRange(3, 7)
    assert len(seq_range) == 5
    assert 3 in seq_range
    assert 7 in seq_range
    assert 8 not in seq_range
    assert "3" not in seq_range


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("not a directory")
    with pytest.raises(LogStorageError, match=f"cannot create event log {tmp_path / 'log'}"):
        EventLog.open(tmp_path / "log")


def test_read_refuses_foreign_keys_among_records(log_path: Path) -> None:
    with EventLog.open(log_path) as log:
        log.append_batch([tagged_record("a"), tagged_record("b")])
    with raw_column(log_path, "records") as records:
        records[(1).to_bytes(8, "big") + b"\x00"] = b"stray"
    with (
        EventLog.open(log_path) as log,
        pytest.raises(LogCorruptError, match="record 1: its range"),
    ):
        list(log.read_raw())
