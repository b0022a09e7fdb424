"""The stored form of a log record, built by hand for speed: pure functions, no I/O.

A stored record is the canonical protobuf encoding of a ``LogRecord``: fields in
number order, proto3 defaults omitted. Protobuf lets encoded fields be
concatenated, so the header fields (1..4) are written here directly and followed
by the encoding of the remaining fields (``time_ms`` and the payload), which
gives exactly the bytes ``LogRecord.SerializeToString()`` would. The log hashes
these bytes, so they must never depend on anything but the record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

from node.core.constants import log_format_version, log_hash_bytes, uint64_max
from node.core.errors import InvalidValueError
from node.proto import log_pb2

SEQ_KEY_BYTES: Final = 8
ZERO_HASH: Final = bytes(log_hash_bytes)
HEAD_KEY: Final = b"head"
FORMAT_KEY: Final = b"format_version"
# The last pruned record (seq || sha256) once a prefix was archived and pruned.
CHECKPOINT_KEY: Final = b"checkpoint"
HEAD_VALUE_BYTES: Final = SEQ_KEY_BYTES + log_hash_bytes

_PAYLOAD_ONEOF: Final = log_pb2.LogRecord.DESCRIPTOR.oneofs_by_name["payload"]
_LENGTH_DELIMITED: Final = 2

# The RecordKind of each payload case is the case's field number (log.proto).
KIND_BY_CASE: Final[dict[str, int]] = {field.name: field.number for field in _PAYLOAD_ONEOF.fields}
CASE_BY_KIND: Final[dict[int, str]] = {kind: case for case, kind in KIND_BY_CASE.items()}
KIND_NAMES: Final[dict[int, str]] = {
    kind: log_pb2.RecordKind.Name(kind).removeprefix("RECORD_KIND_") for kind in CASE_BY_KIND
}

_ONE_BYTE: Final = tuple(bytes((value,)) for value in range(0x80))


def _varint(value: int) -> bytes:
    """The unsigned LEB128 (protobuf varint) encoding of ``value`` (0..2^64-1).

    Unrolled for the sizes a sequence number has: it runs once per appended record.
    """
    if 0 <= value < 0x80:  # a negative value fails below instead of indexing from the end
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x20_0000:
        return bytes((value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14))
    if value < 0x1000_0000:
        return bytes(
            (value & 0x7F | 0x80, value >> 7 & 0x7F | 0x80, value >> 14 & 0x7F | 0x80, value >> 21)
        )
    assert value <= uint64_max, value
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(field_number: int, wire_type: int) -> bytes:
    return _varint(field_number << 3 | wire_type)


# Per kind: format_version (field 2), kind (field 3), then the tag and length of
# prev_hash (field 4); the 32 hash bytes follow. All single-byte varints.
_HEADER_MIDDLE: Final[dict[int, bytes]] = {
    kind: b"".join(
        (
            _tag(2, 0),
            _varint(log_format_version),
            _tag(3, 0),
            _varint(kind),
            _tag(4, _LENGTH_DELIMITED),
            _varint(log_hash_bytes),
        )
    )
    for kind in CASE_BY_KIND
}
_SEQ_TAG: Final = _tag(1, 0)
_PREV_HASH_TAG: Final = _tag(4, _LENGTH_DELIMITED) + _varint(log_hash_bytes)
_TIME_TAG: Final = _tag(5, 0)

# Payload tags by their first byte: (kind, tag length). Fields 16..19 need a
# second tag byte, which is always 0x01.
_PAYLOAD_TAGS: Final[dict[int, tuple[int, int]]] = {
    _tag(kind, _LENGTH_DELIMITED)[0]: (kind, len(_tag(kind, _LENGTH_DELIMITED)))
    for kind in CASE_BY_KIND
}
assert all(len(_tag(kind, _LENGTH_DELIMITED)) <= 2 for kind in CASE_BY_KIND)
assert all(_tag(kind, _LENGTH_DELIMITED)[1:] in (b"", b"\x01") for kind in CASE_BY_KIND)
assert all(kind < 0x80 for kind in CASE_BY_KIND)
assert all(log_pb2.RecordKind.Name(kind) for kind in CASE_BY_KIND)


def seq_key(seq: int) -> bytes:
    """The RocksDB key of record ``seq``: big-endian u64, so byte order is numeric order."""
    return seq.to_bytes(SEQ_KEY_BYTES, "big")


def key_seq(key: bytes) -> int:
    """The sequence number a key encodes; the caller checks its length."""
    return int.from_bytes(key, "big")


def time_field(time_ms: int) -> bytes:
    """The encoded ``time_ms`` field (empty for 0, as proto3 omits defaults)."""
    if not 0 <= time_ms <= uint64_max:
        raise InvalidValueError("time_ms", f"{time_ms} is outside 0..2^64-1")
    return _TIME_TAG + _varint(time_ms) if time_ms else b""


def payload_kind(payload: bytes) -> int:
    """The kind of an encoded ``LogRecord`` that holds only its payload field.

    Args:
        payload: ``LogRecord(<case>=message).SerializeToString()``.

    Returns:
        The record kind (the payload case's field number).

    Raises:
        InvalidValueError: the bytes are not exactly one payload field.
    """
    entry = _PAYLOAD_TAGS.get(payload[0]) if payload else None
    if entry is None or (entry[1] == 2 and payload[1:2] != b"\x01"):
        raise InvalidValueError("payload", "does not start with a LogRecord payload field")
    kind, position = entry
    length = 0
    shift = 0
    while True:
        if position >= len(payload) or shift > 63:
            raise InvalidValueError("payload", "truncated length of the payload field")
        byte = payload[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    if position + length != len(payload):
        raise InvalidValueError(
            "payload", f"holds {len(payload) - position} bytes after the tag, length says {length}"
        )
    return kind


def record_tail(record: log_pb2.LogRecord) -> tuple[int, bytes]:
    """Check a caller's record and encode the part of it the log does not fill.

    Args:
        record: a record with a payload set and, optionally, ``time_ms``.

    Returns:
        (kind, the encoding of ``time_ms`` and the payload).

    Raises:
        InvalidValueError: no payload, or a header field the log owns is set.
    """
    case = record.WhichOneof("payload")
    if case is None:
        raise InvalidValueError("record.payload", "no payload set")
    kind = KIND_BY_CASE[case]
    if record.seq or record.format_version or record.prev_hash:
        raise InvalidValueError(
            "record", "seq, format_version and prev_hash are set by the log: leave them unset"
        )
    if record.kind == 0:
        return kind, record.SerializeToString()
    if record.kind != kind:
        raise InvalidValueError(
            "record.kind", f"is {record.kind} but the payload {case} means {kind}"
        )
    bare = log_pb2.LogRecord()
    bare.CopyFrom(record)
    bare.ClearField("kind")
    return kind, bare.SerializeToString()


def chain_values(
    first_seq: int, prev_hash: bytes, tails: Sequence[tuple[int, bytes]]
) -> tuple[list[bytes], bytes]:
    """Encode consecutive records and link each to the one before it.

    Args:
        first_seq: the sequence number of the first record.
        prev_hash: sha256 of the stored bytes of record ``first_seq - 1``.
        tails: (kind, encoded ``time_ms`` and payload) per record.

    Returns:
        The stored bytes of each record, and the sha256 of the last one.
    """
    assert first_seq >= 1
    assert len(prev_hash) == log_hash_bytes
    assert first_seq + len(tails) - 1 <= uint64_max
    values: list[bytes] = []
    append = values.append
    join = b"".join
    sha256 = hashlib.sha256
    middles = _HEADER_MIDDLE
    seq_tag = _SEQ_TAG
    varint = _varint
    seq = first_seq
    for kind, tail in tails:
        value = join((seq_tag, varint(seq), middles[kind], prev_hash, tail))
        prev_hash = sha256(value).digest()
        append(value)
        seq += 1
    return values, prev_hash


def stored_link(seq: int, value: bytes) -> bytes | None:
    """The ``prev_hash`` of a stored record, read from its header without parsing it.

    Returns None when the bytes do not start as the log writes record ``seq``
    (its seq, then one-byte format version and kind, then the hash's tag and length).
    """
    prefix = _SEQ_TAG + _varint(seq)
    start = len(prefix) + 6
    if not value.startswith(prefix) or value[start - 2 : start] != _PREV_HASH_TAG:
        return None
    return value[start : start + log_hash_bytes]


def encode_head(last_seq: int, last_hash: bytes) -> bytes:
    """The value of the head in "meta": last seq (big-endian u64) || its sha256."""
    assert len(last_hash) == log_hash_bytes
    return seq_key(last_seq) + last_hash


def decode_head(value: bytes) -> tuple[int, bytes] | None:
    """(last seq, its sha256) from a stored head; None if it is malformed."""
    if len(value) != HEAD_VALUE_BYTES:
        return None
    return key_seq(value[:SEQ_KEY_BYTES]), value[SEQ_KEY_BYTES:]


def record_hash(value: bytes) -> bytes:
    """sha256 of a record's stored bytes: the link the next record carries."""
    return hashlib.sha256(value).digest()
