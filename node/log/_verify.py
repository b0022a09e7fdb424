"""Walk the hash chain of stored records: pure functions over (key, value) pairs.

Locating the first bad record: a changed record ``j`` breaks the link that
record ``j + 1`` carries (its ``prev_hash``), while a changed ``prev_hash`` in
record ``j`` breaks the link into ``j`` *and* the one out of it. So when the
link into ``j`` is broken the walk looks one link further: if the link out of
``j`` (to record ``j + 1``, or to the head in "meta" for the last record) still
holds, ``j`` is intact and record ``j - 1`` is the one that changed; otherwise
``j`` is.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import DecodeError

from node.core.constants import log_format_version, log_hash_bytes
from node.log._records import (
    KIND_BY_CASE,
    SEQ_KEY_BYTES,
    decode_head,
    key_seq,
    record_hash,
)
from node.log._types import VerifyReport
from node.proto import log_pb2


def check_record(seq: int, value: bytes) -> tuple[str | None, bytes]:
    """Check one stored record on its own.

    Args:
        seq: the sequence number its key encodes.
        value: its stored bytes.

    Returns:
        (the problem or None, the record's prev_hash).
    """
    try:
        record = log_pb2.LogRecord.FromString(value)
    except DecodeError as error:
        return f"stored bytes do not parse as a LogRecord ({error})", b""
    case = record.WhichOneof("payload")
    if record.seq != seq:
        problem = f"holds seq {record.seq} under the key of seq {seq}"
    elif record.format_version != log_format_version:
        problem = f"format_version is {record.format_version}, expected {log_format_version}"
    elif case is None:
        problem = "has no payload"
    elif record.kind != KIND_BY_CASE[case]:
        problem = f"kind {record.kind} does not match its payload {case}"
    elif len(record.prev_hash) != log_hash_bytes:
        problem = f"prev_hash has {len(record.prev_hash)} bytes, expected {log_hash_bytes}"
    elif record.SerializeToString() != value:
        problem = "stored bytes are not the canonical encoding of the record"
    else:
        return None, record.prev_hash
    return problem, record.prev_hash


def verify_chain(
    pairs: Iterable[tuple[bytes, bytes]],
    *,
    from_seq: int,
    start_hash: bytes,
    head_value: bytes | None,
) -> VerifyReport:
    """Check records ``from_seq..`` and the head; report the first broken record.

    Args:
        pairs: (key, stored bytes) in key order, from the key of ``from_seq`` on.
        from_seq: the first sequence number to check.
        start_hash: sha256 of record ``from_seq - 1`` (zeros when ``from_seq`` is 1).
        head_value: the stored head from "meta", None if absent.

    Returns:
        A report naming the first bad record, or ok with the number checked.
    """
    assert from_seq >= 1
    expected = from_seq
    last_hash = start_hash
    pending: int | None = None  # a record whose incoming link broke
    for key, value in pairs:
        if len(key) != SEQ_KEY_BYTES:
            return _bad(from_seq, expected, f"key {key.hex()} is not a sequence number")
        seq = key_seq(key)
        problem, prev_hash = check_record(seq, value) if seq == expected else ("", b"")
        if problem is not None and pending is not None:
            # The record after the broken link is broken too: blame the link's owner.
            return _blame(from_seq, pending, next_link_holds=False)
        if seq != expected:
            assert seq > expected, (seq, expected)
            return _bad(from_seq, expected, f"missing (the next key is seq {seq})")
        if problem is not None:
            return _bad(from_seq, seq, problem)
        link_holds = prev_hash == last_hash
        if pending is not None:
            return _blame(from_seq, pending, next_link_holds=link_holds)
        if not link_holds:
            pending = seq
        last_hash = record_hash(value)
        expected += 1
    last_seq = expected - 1
    if pending is not None:
        head = decode_head(head_value) if head_value is not None else None
        return _blame(from_seq, pending, next_link_holds=head == (last_seq, last_hash))
    return _check_head(from_seq, last_seq, last_hash, head_value)


def _check_head(
    from_seq: int, last_seq: int, last_hash: bytes, head_value: bytes | None
) -> VerifyReport:
    """Compare the walked chain's end with the head written beside it."""
    if head_value is None:
        if last_seq == 0:
            return VerifyReport(ok=True, records_checked=0)
        return _bad(from_seq, last_seq, "the head in meta is missing")
    head = decode_head(head_value)
    if head is None:
        return _bad(from_seq, max(last_seq, 1), "the head in meta is malformed")
    head_seq, head_hash = head
    if head_seq > last_seq:
        return _bad(from_seq, last_seq + 1, f"missing (the head says the log ends at {head_seq})")
    if head_seq < last_seq:
        return _bad(from_seq, head_seq + 1, f"lies beyond the head (seq {head_seq})")
    if head_hash != last_hash:
        return _bad(from_seq, last_seq, "its sha256 differs from the head hash in meta")
    return VerifyReport(ok=True, records_checked=last_seq - from_seq + 1)


def _blame(from_seq: int, seq: int, *, next_link_holds: bool) -> VerifyReport:
    """The link into ``seq`` broke: blame ``seq - 1`` if ``seq`` itself is intact."""
    if next_link_holds and seq > 1:
        return _bad(from_seq, seq - 1, f"stored bytes differ from the ones record {seq} links to")
    return _bad(from_seq, seq, f"prev_hash does not match sha256 of record {seq - 1}")


def _bad(from_seq: int, seq: int, problem: str) -> VerifyReport:
    return VerifyReport(
        ok=False, records_checked=max(seq - from_seq, 0), first_bad_seq=seq, problem=problem
    )
