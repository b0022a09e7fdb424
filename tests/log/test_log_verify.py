"""verify() finds the exact first bad record after each kind of tampering."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from node.core.errors import InvalidValueError, LogCorruptError
from node.log import EventLog, VerifyReport, seq_key
from node.proto import log_pb2
from tests.log.log_samples import RawColumn, raw_column, sample_records

COUNT = 20
MIDDLE = 8


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One intact log of three batches; each test works on a copy."""
    path = tmp_path_factory.mktemp("pristine") / "log"
    with EventLog.open(path) as log:
        records = sample_records(COUNT, seed=11, time_ms=1_764_000_000_000)
        log.append_batch(records[:5])
        log.append_batch(records[5:13])
        log.append_batch(records[13:])
    return path


@pytest.fixture
def log_path(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "log")
    return tmp_path / "log"


def rewrite(records: RawColumn, seq: int, change: Callable[[log_pb2.LogRecord], None]) -> None:
    """Parse record ``seq``, change it, and store it re-encoded under the same key."""
    record = log_pb2.LogRecord.FromString(records[seq_key(seq)])
    change(record)
    records[seq_key(seq)] = record.SerializeToString()


def flip_last_byte(records: RawColumn, seq: int) -> None:
    value = records[seq_key(seq)]
    records[seq_key(seq)] = value[:-1] + bytes((value[-1] ^ 0x01,))


def shift_time(record: log_pb2.LogRecord) -> None:
    record.time_ms += 1  # still a well-formed record, just not the one appended


def set_prev_hash(record: log_pb2.LogRecord) -> None:
    record.prev_hash = bytes(31) + b"\x01"


def verify_after(path: Path, column: str, tamper: Callable[[RawColumn], None]) -> VerifyReport:
    with raw_column(path, column) as raw:
        tamper(raw)
    with EventLog.open(path) as log:
        return log.verify()


TAMPERINGS: list[tuple[str, str, Callable[[RawColumn], None], int, str]] = [
    (
        "garbage over a middle record",
        "records",
        lambda r: r.__setitem__(seq_key(MIDDLE), b"\xff" * 50),
        MIDDLE,
        "do not parse",
    ),
    (
        "a middle record rewritten",
        "records",
        lambda r: rewrite(r, MIDDLE, shift_time),
        MIDDLE,
        f"differ from the ones record {MIDDLE + 1} links to",
    ),
    (
        "a changed byte inside a middle record",
        "records",
        lambda r: flip_last_byte(r, MIDDLE),
        MIDDLE,
        "",
    ),
    (
        "the first record rewritten",
        "records",
        lambda r: rewrite(r, 1, shift_time),
        1,
        "links to",
    ),
    (
        "a middle record deleted (a gap)",
        "records",
        lambda r: r.__delitem__(seq_key(MIDDLE)),
        MIDDLE,
        f"missing (the next key is seq {MIDDLE + 1})",
    ),
    (
        "the tail truncated, head left",
        "records",
        lambda r: r.__delitem__(seq_key(COUNT)),
        COUNT,
        f"the head says the log ends at {COUNT}",
    ),
    (
        "the last record mangled",
        "records",
        lambda r: flip_last_byte(r, COUNT),
        COUNT,
        "",
    ),
    (
        "the last record rewritten",
        "records",
        lambda r: rewrite(r, COUNT, shift_time),
        COUNT,
        "differs from the head hash",
    ),
    (
        "a wrong prev_hash in a middle record",
        "records",
        lambda r: rewrite(r, MIDDLE, set_prev_hash),
        MIDDLE,
        f"prev_hash does not match sha256 of record {MIDDLE - 1}",
    ),
    (
        "a wrong prev_hash in the first record",
        "records",
        lambda r: rewrite(r, 1, set_prev_hash),
        1,
        "prev_hash does not match",
    ),
    (
        "a wrong prev_hash in the last record",
        "records",
        lambda r: rewrite(r, COUNT, set_prev_hash),
        COUNT,
        "prev_hash does not match",
    ),
    (
        "a record under another seq's key",
        "records",
        lambda r: rewrite(r, MIDDLE, lambda rec: setattr(rec, "seq", MIDDLE + 1)),
        MIDDLE,
        f"holds seq {MIDDLE + 1} under the key of seq {MIDDLE}",
    ),
    (
        "a wrong format version",
        "records",
        lambda r: rewrite(r, MIDDLE, lambda rec: setattr(rec, "format_version", 2)),
        MIDDLE,
        "format_version is 2",
    ),
    (
        "a kind that does not match the payload",
        "records",
        lambda r: rewrite(
            r, MIDDLE, lambda rec: setattr(rec, "kind", 17 if rec.kind != 17 else 16)
        ),
        MIDDLE,
        "does not match its payload",
    ),
    (
        "no payload",
        "records",
        lambda r: rewrite(r, MIDDLE, lambda rec: rec.ClearField(rec.WhichOneof("payload") or "")),
        MIDDLE,
        "has no payload",
    ),
    (
        "a short prev_hash",
        "records",
        lambda r: rewrite(r, MIDDLE, lambda rec: setattr(rec, "prev_hash", b"\x01")),
        MIDDLE,
        "prev_hash has 1 bytes",
    ),
    (
        "a non-canonical encoding (a duplicated field)",
        "records",
        lambda r: r.__setitem__(seq_key(MIDDLE), r[seq_key(MIDDLE)] + b"\x28\x01"),
        MIDDLE,
        "not the canonical encoding",
    ),
    (
        "a stray key among the records",
        "records",
        lambda r: r.__setitem__(seq_key(MIDDLE) + b"\x00", b"stray"),
        MIDDLE + 1,
        "is not a sequence number",
    ),
    (
        "a record beyond the head",
        "records",
        lambda r: r.__setitem__(seq_key(COUNT + 1), b"\x08\x15"),
        COUNT + 1,
        "",
    ),
    (
        "the head missing",
        "meta",
        lambda m: m.__delitem__(b"head"),
        COUNT,
        "the head in meta is missing",
    ),
    (
        "the head malformed",
        "meta",
        lambda m: m.__setitem__(b"head", b"\x00" * 7),
        COUNT,
        "the head in meta is malformed",
    ),
    (
        "the head hash changed",
        "meta",
        lambda m: m.__setitem__(b"head", seq_key(COUNT) + bytes(32)),
        COUNT,
        "differs from the head hash",
    ),
    (
        "the head moved back one record",
        "meta",
        lambda m: m.__setitem__(b"head", seq_key(COUNT - 1) + m[b"head"][8:]),
        COUNT,
        "lies beyond the head",
    ),
]


@pytest.mark.parametrize(
    ("column", "tamper", "first_bad", "problem"),
    [pytest.param(*case[1:], id=case[0]) for case in TAMPERINGS],
)
def test_verify_reports_the_first_bad_record(
    log_path: Path,
    column: str,
    tamper: Callable[[RawColumn], None],
    first_bad: int,
    problem: str,
) -> None:
    report = verify_after(log_path, column, tamper)
    assert not report.ok
    assert report.first_bad_seq == first_bad, report
    assert report.problem is not None
    assert problem in report.problem
    assert report.records_checked == first_bad - 1
    with pytest.raises(LogCorruptError) as raised:
        report.raise_if_broken()
    assert raised.value.seq == first_bad


def test_an_intact_log_verifies(log_path: Path) -> None:
    with EventLog.open(log_path) as log:
        report = log.verify()
        report.raise_if_broken()
        assert report == VerifyReport(ok=True, records_checked=COUNT)
        assert log.verify(from_seq=15) == VerifyReport(ok=True, records_checked=COUNT - 14)
        assert log.verify(from_seq=COUNT + 1) == VerifyReport(ok=True, records_checked=0)
        for bad in (0, COUNT + 2):
            with pytest.raises(InvalidValueError, match="from_seq"):
                log.verify(from_seq=bad)


def test_verify_from_the_middle(log_path: Path) -> None:
    report = verify_after(log_path, "records", lambda r: rewrite(r, 15, shift_time))
    assert report.first_bad_seq == 15
    with EventLog.open(log_path) as log:
        assert log.verify(from_seq=10).first_bad_seq == 15
        assert log.verify(from_seq=10).records_checked == 5
        # Starting after the changed record still blames it: the link into 16 breaks.
        assert log.verify(from_seq=16).first_bad_seq == 15
        assert log.verify(from_seq=17).ok


def test_verify_from_the_middle_with_the_record_before_missing(log_path: Path) -> None:
    verify_after(log_path, "records", lambda r: r.__delitem__(seq_key(9)))
    with EventLog.open(log_path) as log:
        assert log.verify(from_seq=10) == VerifyReport(False, 0, 9, "is missing from the log")


def test_a_changed_last_record_blocks_appends_after_reopen(log_path: Path) -> None:
    verify_after(log_path, "records", lambda r: flip_last_byte(r, COUNT))
    with EventLog.open(log_path) as log, pytest.raises(LogCorruptError) as raised:
        log.append_batch(sample_records(1, seed=1))
    assert raised.value.seq == COUNT
    assert "refusing to append" in str(raised.value)


def test_two_corruptions_report_the_earlier(log_path: Path) -> None:
    def both(records: RawColumn) -> None:
        rewrite(records, 6, shift_time)
        records[seq_key(12)] = b"\xff"

    assert verify_after(log_path, "records", both).first_bad_seq == 6


def test_a_broken_link_followed_by_an_unreadable_record_blames_the_link(log_path: Path) -> None:
    def both(records: RawColumn) -> None:
        rewrite(records, 6, set_prev_hash)
        records[seq_key(7)] = b"\xff"

    assert verify_after(log_path, "records", both).first_bad_seq == 6
