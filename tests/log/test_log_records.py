"""The hand-built stored form of a record equals protobuf's canonical encoding."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.core.constants import log_format_version, uint64_max
from node.core.errors import InvalidValueError
from node.log import KIND_BY_CASE, KIND_NAMES
from node.log._records import (
    ZERO_HASH,
    _varint,
    chain_values,
    decode_head,
    encode_head,
    payload_kind,
    record_tail,
    time_field,
)
from node.proto import log_pb2
from tests.log.log_samples import CASES, payload_record


def canonical(record: log_pb2.LogRecord, *, seq: int, prev_hash: bytes) -> bytes:
    """What protobuf itself writes for the record with the log's header."""
    full = log_pb2.LogRecord()
    full.CopyFrom(record)
    full.seq = seq
    full.format_version = log_format_version
    full.prev_hash = prev_hash
    kind = KIND_BY_CASE[record.WhichOneof("payload") or ""]
    full.MergeFrom(log_pb2.LogRecord(kind=log_pb2.RecordKind.Name(kind)))
    return full.SerializeToString()


def test_kind_is_the_payload_field_number_and_names_match() -> None:
    assert len(KIND_BY_CASE) == 11
    for case, kind in KIND_BY_CASE.items():
        assert log_pb2.RecordKind.Name(kind) == "RECORD_KIND_" + case.upper()
        assert KIND_NAMES[kind] == case.upper()


@given(st.integers(min_value=0, max_value=uint64_max))
def test_varint_matches_protobuf(value: int) -> None:
    encoded = log_pb2.LogRecord(seq=value).SerializeToString()
    expected = encoded[1:] if value else b"\x00"
    assert _varint(value) == expected


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16_383, 16_384, 2**21 - 1, 2**21, 2**28 - 1])
def test_varint_at_size_boundaries(value: int) -> None:
    encoded = log_pb2.LogRecord(time_ms=value).SerializeToString()
    assert _varint(value) == (encoded[1:] if value else b"\x00")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("time_ms", [0, 1, 1_764_000_000_123])
def test_chain_values_equal_canonical_encoding(case: str, time_ms: int) -> None:
    rng = random.Random(case)
    records = [payload_record(case, rng) for _ in range(3)]
    for record in records:
        record.time_ms = time_ms
    first_seq = 2**21 - 1  # crosses a varint size within the batch
    prev = hashlib.sha256(b"anything").digest()
    values, last_hash = chain_values(first_seq, prev, [record_tail(r) for r in records])
    for offset, (record, value) in enumerate(zip(records, values, strict=True)):
        assert value == canonical(record, seq=first_seq + offset, prev_hash=prev)
        prev = hashlib.sha256(value).digest()
    assert last_hash == prev


@pytest.mark.parametrize("case", CASES)
def test_fast_path_tail_equals_record_tail(case: str) -> None:
    record = payload_record(case, random.Random(1))
    payload = record.SerializeToString()
    assert payload_kind(payload) == KIND_BY_CASE[case]
    record.time_ms = 99
    assert record_tail(record) == (KIND_BY_CASE[case], time_field(99) + payload)


def test_record_tail_accepts_a_matching_kind_and_leaves_the_record_alone() -> None:
    record = payload_record("command", random.Random(2))
    record.kind = log_pb2.RECORD_KIND_COMMAND
    before = record.SerializeToString()
    kind, tail = record_tail(record)
    assert kind == log_pb2.RECORD_KIND_COMMAND
    assert tail == payload_record("command", random.Random(2)).SerializeToString()
    assert record.SerializeToString() == before


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (log_pb2.LogRecord(time_ms=5), "record.payload"),
        (log_pb2.LogRecord(seq=3, rejected=log_pb2.Rejected()), "record"),
        (log_pb2.LogRecord(format_version=1, rejected=log_pb2.Rejected()), "record"),
        (log_pb2.LogRecord(prev_hash=ZERO_HASH, rejected=log_pb2.Rejected()), "record"),
        (
            log_pb2.LogRecord(kind=log_pb2.RECORD_KIND_COMMAND, rejected=log_pb2.Rejected()),
            "record.kind",
        ),
    ],
)
def test_record_tail_refuses_bad_records(record: log_pb2.LogRecord, field: str) -> None:
    with pytest.raises(InvalidValueError) as raised:
        record_tail(record)
    assert raised.value.field == field


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x08\x01",  # seq, not a payload field
        b"\x82\x02\x00",  # field 32
        b"\x52",  # tag without a length
        b"\x52\x05abc",  # length says 5, holds 3
        b"\x52\x01ab",  # trailing byte after the field
        b"\x52\x80",  # truncated length varint
        log_pb2.LogRecord(time_ms=1, rejected=log_pb2.Rejected(reason="x")).SerializeToString(),
    ],
)
def test_payload_kind_refuses_anything_but_one_payload_field(payload: bytes) -> None:
    with pytest.raises(InvalidValueError, match="payload"):
        payload_kind(payload)


def test_payload_kind_accepts_an_empty_message_and_two_byte_tags() -> None:
    assert payload_kind(log_pb2.LogRecord(rejected=log_pb2.Rejected()).SerializeToString()) == 16
    assert payload_kind(log_pb2.LogRecord(command=log_pb2.Command()).SerializeToString()) == 12


def test_time_field_bounds() -> None:
    assert time_field(0) == b""
    assert log_pb2.LogRecord.FromString(time_field(uint64_max)).time_ms == uint64_max
    with pytest.raises(InvalidValueError, match="time_ms"):
        time_field(-1)
    with pytest.raises(InvalidValueError, match="time_ms"):
        time_field(uint64_max + 1)


def test_head_round_trip_and_malformed() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert decode_head(encode_head(7, digest)) == (7, digest)
    assert decode_head(encode_head(7, digest)[:-1]) is None
