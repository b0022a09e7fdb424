"""A log's whole history: the archives of its pruned prefixes, then the live log.

It reads like the live log (``read``, ``read_raw``, snapshots), so derivation,
time travel and ``scnode log show`` work on records that were archived and
pruned (docs/adr/0011-log-archive.md).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from itertools import pairwise
from pathlib import Path

from google.protobuf.message import DecodeError

from node.core.errors import InvalidValueError, LogCorruptError
from node.log._archive import ArchiveReader
from node.log._store import EventLog, pruned_error
from node.log._types import Snapshot
from node.proto import log_pb2


def chain_archives(
    archives: Sequence[ArchiveReader], checkpoint: tuple[int, bytes]
) -> list[ArchiveReader]:
    """Archives in order, checked to form one chain that ends at the live log's checkpoint.

    Args:
        archives: archives of the log, in any order.
        checkpoint: the live log's (last pruned seq, sha256 of that record).

    Raises:
        InvalidValueError: they overlap, leave a gap, do not link, or do not end
            where the live log starts.
    """
    ordered = sorted(archives, key=lambda archive: archive.header.first_seq)
    for before, after in pairwise(ordered):
        if after.header.first_seq != before.header.last_seq + 1:
            raise InvalidValueError(
                "archive",
                f"{before.path.name} holds records {before.header.first_seq}.."
                f"{before.header.last_seq} and {after.path.name} starts at"
                f" {after.header.first_seq}: give archives that follow each other",
            )
        if after.header.start_hash != before.header.head_hash:
            raise InvalidValueError(
                "archive", f"{after.path.name} does not link to {before.path.name}"
            )
    if ordered:
        last = ordered[-1]
        pruned_seq, pruned_hash = checkpoint
        if last.header.last_seq != pruned_seq:
            raise InvalidValueError(
                "archive",
                f"the archives end at record {last.header.last_seq} but the live log's"
                f" checkpoint is record {pruned_seq}: give the archives up to it",
            )
        if last.header.head_hash != pruned_hash:
            raise InvalidValueError(
                "archive",
                f"{last.path.name} ends with another record {pruned_seq} than the one"
                " the live log's checkpoint names",
            )
    return ordered


class LogHistory:
    """The records of archives and of the live log as one sequence.

    Args:
        log: the live log.
        archives: the archives of its pruned prefix (see ``chain_archives``).

    Raises:
        InvalidValueError: as ``chain_archives``.
    """

    def __init__(self, log: EventLog, archives: Sequence[ArchiveReader]) -> None:
        self.log = log
        self.archives = chain_archives(archives, log.checkpoint)

    @classmethod
    def open(cls, log: EventLog, paths: Sequence[Path]) -> LogHistory:
        """The history of ``log`` with the archives at ``paths``.

        Raises:
            InvalidValueError: a file is not an archive, or they do not chain.
            OSError: a file cannot be read.
        """
        return cls(log, [ArchiveReader(path) for path in paths])

    @property
    def first_seq(self) -> int:
        """The first record held (1 when the archives reach back to the beginning)."""
        if self.archives:
            return self.archives[0].header.first_seq
        return self.log.first_seq

    @property
    def last_seq(self) -> int:
        return self.log.last_seq

    def read_raw(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, stored bytes) for ``from_seq..to_seq``, as ``EventLog.read_raw``.

        Raises:
            InvalidValueError: ``from_seq`` below 1 or ``to_seq`` below 0.
            LogPrunedError: the range starts below the archives given.
            LogCorruptError: a record is missing, or an archive fails its checks.
        """
        if from_seq < 1:
            raise InvalidValueError("from_seq", f"{from_seq} is below 1")
        if to_seq is not None and to_seq < 0:
            raise InvalidValueError("to_seq", f"{to_seq} is below 0")
        last = self.last_seq if to_seq is None else min(to_seq, self.last_seq)
        if from_seq <= min(last, self.first_seq - 1):
            raise pruned_error(self.first_seq - 1, from_seq)
        return self._raw(from_seq, last)

    def _raw(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        seq = first
        for archive in self.archives:
            if seq > last:
                return
            if archive.header.last_seq < seq:
                continue
            records: Generator[tuple[int, bytes], None, None] = archive.records(seq)
            with closing(records):
                for found, value in records:
                    if found > last:
                        return
                    yield found, value
            seq = archive.header.last_seq + 1
        if seq <= last:
            yield from self.log.read_raw(seq, last)

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[log_pb2.LogRecord]:
        """Records ``from_seq..to_seq``, parsed; as ``read_raw``."""
        for seq, value in self.read_raw(from_seq, to_seq):
            try:
                record = log_pb2.LogRecord.FromString(value)
            except DecodeError as error:
                raise LogCorruptError(seq, f"does not parse as a LogRecord ({error})") from None
            if record.seq != seq:
                raise LogCorruptError(seq, f"holds seq {record.seq}")
            yield record

    def put_snapshot(self, key: bytes, seq: int, blob: bytes) -> None:
        """Store a snapshot in the live log (at or after its checkpoint)."""
        self.log.put_snapshot(key, seq, blob)

    def latest_snapshot(self, key: bytes, at_or_before: int | None = None) -> Snapshot | None:
        """The live log's newest snapshot for ``key`` at or before ``at_or_before``."""
        return self.log.latest_snapshot(key, at_or_before)
