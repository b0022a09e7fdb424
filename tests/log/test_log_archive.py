"""Archives of a pruned prefix: writing, reading back, pruning, the checkpoint, and the
chain proven across archives and the live log; tampering found wherever it is."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import pytest

from node.core.errors import InvalidValueError, LogCorruptError, LogPrunedError
from node.log import (
    ArchiveHeader,
    ArchiveReader,
    Codec,
    EventLog,
    LogHistory,
    record_hash,
    seq_key,
    write_archive,
)
from node.log._archive import HEADER_BYTES
from tests.log.log_samples import raw_column, sample_records, tagged_record

RECORDS = 300
KEY_A = b"a" * 32
KEY_B = b"b" * 32


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "log"
    with EventLog.open(path) as log:
        for seed in range(3):
            log.append_batch(sample_records(RECORDS // 3, seed=seed, time_ms=1_000 + seed))
    return path


def archive_prefix(log: EventLog, before: int, path: Path, codec: Codec = Codec.GZIP) -> bytes:
    """Archive ``first_seq..before-1`` to ``path``; the archive's head hash."""
    header = write_archive(
        path,
        log.read_raw(log.first_seq, before - 1),
        first_seq=log.first_seq,
        last_seq=before - 1,
        start_hash=log.checkpoint[1],
        codec=codec,
    )
    return header.head_hash


@pytest.mark.parametrize("codec", list(Codec))
def test_archive_prune_and_read_back(log_path: Path, tmp_path: Path, codec: Codec) -> None:
    archive = tmp_path / "prefix.archive"
    with EventLog.open(log_path) as log:
        everything = list(log.read_raw())
        head = archive_prefix(log, 200, archive, codec)
        assert head == record_hash(everything[198][1])
        assert ArchiveReader(archive).verify().ok
        assert log.prune(200, archived_head=head) == 199
        assert (log.first_seq, log.checkpoint) == (200, (199, head))
        assert log.verify().ok
        assert log.verify().records_checked == RECORDS - 199
        with pytest.raises(LogPrunedError, match=r"record 1 is archived: records 1\.\.199"):
            list(log.read_raw())
        assert list(log.read_raw(200)) == everything[199:]
        assert list(log.read_raw(150, 120)) == []  # an empty range asks for nothing
        history = LogHistory.open(log, [archive])
        assert history.first_seq == 1
        assert list(history.read_raw()) == everything
        assert list(history.read_raw(190, 210)) == everything[189:210]
        assert [record.seq for record in history.read(198, 201)] == [198, 199, 200, 201]
    with EventLog.open(log_path) as log:  # the checkpoint survives a restart
        assert (log.first_seq, log.last_seq) == (200, RECORDS)
        assert log.verify().ok
        log.append_batch([tagged_record("after the prune")])
        assert log.verify().ok
        assert list(LogHistory.open(log, [archive]).read_raw())[:-1] == everything


def test_an_archive_is_compressed_and_names_its_range(log_path: Path, tmp_path: Path) -> None:
    with EventLog.open(log_path) as log:
        archive_prefix(log, 101, tmp_path / "a")
    header = ArchiveReader(tmp_path / "a").header
    assert (header.first_seq, header.last_seq, header.records) == (1, 100, 100)
    assert header.start_hash == bytes(32)
    assert header.body_bytes < header.raw_bytes
    assert (tmp_path / "a").stat().st_size == HEADER_BYTES + header.body_bytes
    assert not list(tmp_path.glob("*.partial"))


def test_prune_refuses_what_the_archive_does_not_hold(log_path: Path, tmp_path: Path) -> None:
    with EventLog.open(log_path) as log:
        head = archive_prefix(log, 100, tmp_path / "a")
        with pytest.raises(InvalidValueError, match="archived_head: is not the sha256 of record"):
            log.prune(101, archived_head=head)
        for before in (1, RECORDS + 2):
            with pytest.raises(InvalidValueError, match="before"):
                log.prune(before, archived_head=head)
        assert log.first_seq == 1
        assert log.verify().ok


def test_prune_drops_the_snapshots_it_leaves_nothing_to_replay_from(
    log_path: Path, tmp_path: Path
) -> None:
    with EventLog.open(log_path) as log:
        for key, seq in ((KEY_A, 50), (KEY_A, 199), (KEY_A, 250), (KEY_B, 100)):
            log.put_snapshot(key, seq, f"{seq}".encode())
        log.prune(200, archived_head=archive_prefix(log, 200, tmp_path / "a"))
        assert log.latest_snapshot(KEY_A, at_or_before=198) is None
        assert log.latest_snapshot(KEY_B) is None
        kept = log.latest_snapshot(KEY_A, at_or_before=249)
        assert kept is not None
        assert (kept.seq, kept.blob) == (199, b"199")
        with pytest.raises(InvalidValueError, match="the checkpoint"):
            log.put_snapshot(KEY_A, 198, b"below")


def test_every_record_pruned_then_more_appended(log_path: Path, tmp_path: Path) -> None:
    with EventLog.open(log_path) as log:
        log.prune(RECORDS + 1, archived_head=archive_prefix(log, RECORDS + 1, tmp_path / "a"))
        assert (log.first_seq, log.last_seq) == (RECORDS + 1, RECORDS)
        assert list(log.read_raw(RECORDS + 1)) == []
        assert log.verify().ok
    with EventLog.open(log_path) as log:
        assert log.verify().ok
        log.append_batch([tagged_record("next")])
        assert log.verify().ok
        (record,) = log.read(log.first_seq)
        assert record.seq == RECORDS + 1
        assert record.prev_hash == log.checkpoint[1]


def test_archives_of_two_prunes_chain(log_path: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "1", tmp_path / "2"
    with EventLog.open(log_path) as log:
        everything = list(log.read_raw())
        log.prune(100, archived_head=archive_prefix(log, 100, first))
        log.prune(250, archived_head=archive_prefix(log, 250, second))
        assert ArchiveReader(second).header.start_hash == record_hash(everything[98][1])
        for order in ([first, second], [second, first]):
            assert list(LogHistory.open(log, order).read_raw()) == everything
        only_second = LogHistory.open(log, [second])
        assert only_second.first_seq == 100
        with pytest.raises(LogPrunedError):
            list(only_second.read_raw(99))
        with pytest.raises(InvalidValueError, match=r"end at record 99 but .* checkpoint is"):
            LogHistory.open(log, [first])
        with pytest.raises(InvalidValueError, match="follow each other"):
            LogHistory.open(log, [first, first, second])


def test_write_archive_refuses_a_broken_source_and_leaves_nothing(
    log_path: Path, tmp_path: Path
) -> None:
    with EventLog.open(log_path) as log:
        records = list(log.read_raw(1, 20))
    target = tmp_path / "a"
    broken = [*records[:5], (6, records[6][1]), *records[7:]]
    with pytest.raises(LogCorruptError, match="record 6"):
        write_archive(target, broken, first_seq=1, last_seq=20, start_hash=bytes(32))
    with pytest.raises(LogCorruptError, match="record 21: missing"):
        write_archive(target, records, first_seq=1, last_seq=21, start_hash=bytes(32))
    with pytest.raises(LogCorruptError, match="record 1: its prev_hash"):
        write_archive(target, records, first_seq=1, last_seq=20, start_hash=b"\x01" * 32)
    assert list(tmp_path.iterdir()) == [tmp_path / "log"]
    write_archive(target, records, first_seq=1, last_seq=20, start_hash=bytes(32))
    with pytest.raises(InvalidValueError, match="never overwritten"):
        write_archive(target, records, first_seq=1, last_seq=20, start_hash=bytes(32))


# ---------------------------------------------------------------- tampering


def rewrite_body(path: Path, change: bytes, at: int) -> None:
    """Change the uncompressed body at ``at`` and store it again as a well-formed archive
    (new digest and lengths): only the chain can tell."""
    header = ArchiveReader(path).header
    data = path.read_bytes()
    body = bytearray(gzip.decompress(data[HEADER_BYTES:]))
    body[at : at + len(change)] = change
    stored = gzip.compress(bytes(body), mtime=0)
    forged = ArchiveHeader(
        header.codec,
        header.first_seq,
        header.last_seq,
        header.start_hash,
        header.head_hash,
        len(body),
        len(stored),
        hashlib.sha256(stored).digest(),
    )
    path.write_bytes(forged.encode() + stored)


@pytest.fixture
def archived(log_path: Path, tmp_path: Path) -> Path:
    archive = tmp_path / "a"
    with EventLog.open(log_path) as log:
        log.prune(101, archived_head=archive_prefix(log, 101, archive))
    return archive


def test_a_changed_record_in_a_well_formed_archive_is_found(archived: Path) -> None:
    rewrite_body(archived, b"\xff", at=4 + 60)  # inside record 1
    report = ArchiveReader(archived).verify()
    assert not report.ok
    assert report.first_bad_seq == 1
    with pytest.raises(LogCorruptError, match="record 2: its prev_hash"):
        list(ArchiveReader(archived).records())


def test_a_flipped_byte_or_a_cut_archive_is_found(archived: Path, tmp_path: Path) -> None:
    data = archived.read_bytes()
    flipped = tmp_path / "flipped"
    flipped.write_bytes(data[:-20] + bytes([data[-20] ^ 1]) + data[-19:])
    assert not ArchiveReader(flipped).verify().ok
    for name, content in (("cut", data[:-1]), ("longer", data + b"\x00")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InvalidValueError, match="body bytes"):
            ArchiveReader(tmp_path / name)
    (tmp_path / "foreign").write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(InvalidValueError, match="not an scnode log archive"):
        ArchiveReader(tmp_path / "foreign")


def test_a_changed_header_is_found(archived: Path, tmp_path: Path) -> None:
    data = archived.read_bytes()
    head_at = 8 + 2 + 1 + 1 + 8 + 8 + 32
    changed = tmp_path / "head"
    changed.write_bytes(data[:head_at] + b"\x00" * 32 + data[head_at + 32 :])
    report = ArchiveReader(changed).verify()
    assert (report.ok, report.first_bad_seq) == (False, 100)
    last_at = 8 + 2 + 1 + 1 + 8
    shorter = tmp_path / "shorter"
    shorter.write_bytes(data[:last_at] + struct.pack(">Q", 99) + data[last_at + 8 :])
    assert not ArchiveReader(shorter).verify().ok


def test_archives_that_do_not_end_at_the_checkpoint_are_refused(
    archived: Path, log_path: Path
) -> None:
    rewrite_body(archived, b"\xff", at=4 + 60)
    data = bytearray(archived.read_bytes())
    data[60:92] = b"\x07" * 32  # another head hash
    archived.write_bytes(bytes(data))
    with EventLog.open(log_path) as log, pytest.raises(InvalidValueError, match="checkpoint"):
        LogHistory.open(log, [archived])


def test_a_changed_checkpoint_or_live_record_is_found(archived: Path, log_path: Path) -> None:
    with raw_column(log_path, "meta") as meta:
        original = meta[b"checkpoint"]
        meta[b"checkpoint"] = original[:8] + b"\x00" * 32
    with EventLog.open(log_path, read_only=True) as log:
        report = log.verify()
        assert (report.ok, report.first_bad_seq) == (False, 101)
        assert "checkpoint" in (report.problem or "")
    with raw_column(log_path, "meta") as meta:
        meta[b"checkpoint"] = original
    with raw_column(log_path, "records") as records:
        records[seq_key(50)] = b"a pruned record is back"
    with EventLog.open(log_path, read_only=True) as log:
        report = log.verify()
        assert (report.ok, report.first_bad_seq) == (False, 50)
    with raw_column(log_path, "records") as records:
        del records[seq_key(50)]
        value = records[seq_key(101)]
        records[seq_key(101)] = value[:-1] + bytes([value[-1] ^ 1])
    with EventLog.open(log_path, read_only=True) as log:
        report = log.verify()
        assert (report.ok, report.first_bad_seq) == (False, 101)


def test_a_checkpoint_past_the_head_is_damage(archived: Path, log_path: Path) -> None:
    with raw_column(log_path, "meta") as meta:
        meta[b"checkpoint"] = seq_key(RECORDS + 5) + b"\x00" * 32
    with (
        EventLog.open(log_path) as log,
        pytest.raises(LogCorruptError, match="checkpoint at 305 is past the head"),
    ):
        log.append_batch([tagged_record("x")])
