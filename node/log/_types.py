"""Values the event log hands out."""

from __future__ import annotations

from dataclasses import dataclass

from node.core.errors import LogCorruptError


@dataclass(frozen=True)
class SeqRange:
    """The inclusive range of sequence numbers one append was given."""

    first: int
    last: int

    def __post_init__(self) -> None:
        assert 1 <= self.first <= self.last, self

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, seq: object) -> bool:
        return isinstance(seq, int) and self.first <= seq <= self.last


@dataclass(frozen=True)
class PreparedBatch:
    """Records encoded, numbered and hash-linked after a known head, not yet written.

    ``EventLog.prepare`` makes one and ``EventLog.commit`` writes it, so the one
    writer can fold records into its derived state before they are durable and
    still append them in one write (``extend`` adds more after them).

    Attributes:
        first: the sequence number of the first record.
        base_hash: sha256 of record ``first - 1`` (the head this batch builds on).
        values: the stored bytes of each record, in order.
        last_hash: sha256 of the last record (the head once committed).
    """

    first: int
    base_hash: bytes
    values: tuple[bytes, ...]
    last_hash: bytes

    def __post_init__(self) -> None:
        assert self.first >= 1
        assert self.values or self.last_hash == self.base_hash

    @property
    def last(self) -> int:
        """The sequence number of the last record (``first - 1`` when empty)."""
        return self.first + len(self.values) - 1

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Snapshot:
    """A derivation module's state after folding records ``1..seq``."""

    key: bytes
    seq: int
    blob: bytes


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of walking the hash chain.

    Attributes:
        ok: every check passed.
        records_checked: records that passed every check before the walk stopped.
        first_bad_seq: the first record found broken (None when ok).
        problem: what is wrong with it (None when ok).
    """

    ok: bool
    records_checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def __post_init__(self) -> None:
        assert self.records_checked >= 0
        assert self.ok == (self.first_bad_seq is None) == (self.problem is None), self

    def raise_if_broken(self) -> None:
        """Raise if the walk found a broken record.

        Raises:
            LogCorruptError: names the first bad record and its problem.
        """
        if self.first_bad_seq is not None:
            raise LogCorruptError(self.first_bad_seq, self.problem or "broken")
