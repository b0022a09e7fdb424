"""Frames: encoding against protobuf, stream splitting, and hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.core.constants import frame_messages_max, message_size_bytes_max
from node.core.errors import PeerProtocolError
from node.p2p._framing import (
    FrameDecoder,
    check_envelope,
    encode_frame,
    encode_varint,
    envelope_field,
    parse_frame,
    sent_message_payload,
)
from node.proto import log_pb2, wire_pb2

SENDER = b"\xaa" * 20
RECIPIENT = b"\xbb" * 20


def _envelope(message_id: int, label: str = "x") -> wire_pb2.Envelope:
    envelope = wire_pb2.Envelope(id=message_id, sender=SENDER, recipient=RECIPIENT)
    envelope.payloads.add(objective_id=label, ack=wire_pb2.Ack(message_ids=[message_id]))
    return envelope


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_matches_protobuf(value: int) -> None:
    frame = wire_pb2.Frame(acks=[value])
    assert frame.SerializeToString() == b"\x1a" + encode_varint(len(encode_varint(value))) + (
        encode_varint(value)
    )


@given(
    st.lists(st.integers(min_value=1, max_value=2**64 - 1), max_size=20),
    st.lists(st.text(max_size=40), max_size=20),
)
def test_encoded_frame_parses_back(acks: list[int], labels: list[str]) -> None:
    envelopes = [_envelope(index + 1, label) for index, label in enumerate(labels)]
    data = encode_frame([envelope_field(e.SerializeToString()) for e in envelopes], acks)
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    frame = parse_frame(data[4:])
    assert frame.version == 1
    assert list(frame.acks) == acks
    assert list(frame.messages) == envelopes


@given(st.lists(st.binary(max_size=300), max_size=10), st.data())
def test_decoder_reassembles_any_chunking(bodies: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(len(body).to_bytes(4, "big") + body for body in bodies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder(1000)
    out: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out.extend(decoder.feed(stream[start:cut]))
        start = cut
    assert out == bodies
    assert decoder.buffered_bytes == 0


def test_oversize_length_prefix_is_refused_before_the_body() -> None:
    decoder = FrameDecoder(1000)
    with pytest.raises(PeerProtocolError, match="exceeds frame_size_bytes_max"):
        decoder.feed((1001).to_bytes(4, "big"))


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x12\x05ab", b"\x0a"])
def test_garbage_body_is_malformed(body: bytes) -> None:
    with pytest.raises(PeerProtocolError, match="malformed frame"):
        parse_frame(body)


def test_a_frame_of_too_many_messages_is_refused() -> None:
    envelope = _envelope(1, "x")
    fields = [envelope_field(envelope.SerializeToString())] * (frame_messages_max + 1)
    body = encode_frame(fields, [])[4:]
    with pytest.raises(PeerProtocolError, match="exceeds frame_messages_max"):
        parse_frame(body)
    assert len(parse_frame(encode_frame(fields[1:], [])[4:]).messages) == len(fields) - 1


def test_unknown_version_is_refused() -> None:
    with pytest.raises(PeerProtocolError, match="version 2"):
        parse_frame(wire_pb2.Frame(version=2).SerializeToString())


def test_sent_message_payload_matches_protobuf() -> None:
    envelope = _envelope(7, "y" * 300)
    record = log_pb2.LogRecord(sent_message=log_pb2.SentMessage(peer=RECIPIENT, envelope=envelope))
    assert sent_message_payload(RECIPIENT, envelope.SerializeToString()) == (
        record.SerializeToString()
    )


def test_valid_envelope_passes() -> None:
    check_envelope(_envelope(1), sender=SENDER, recipient=RECIPIENT)


def _mutated(field: str) -> wire_pb2.Envelope:
    envelope = _envelope(3)
    if field == "sender":
        envelope.sender = b"\xcc" * 20
    elif field == "recipient":
        envelope.recipient = b"\xcc" * 20
    elif field == "id":
        envelope.id = 0
    elif field == "payloads":
        del envelope.payloads[:]
    elif field == "type":
        envelope.payloads.add(objective_id="no body")
    elif field == "size":
        envelope.payloads.add(objective_id="z" * message_size_bytes_max, ack=wire_pb2.Ack())
    return envelope


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("sender", "does not match the authenticated peer"),
        ("recipient", "is not this node"),
        ("id", "ids start at 1"),
        ("payloads", "no payloads"),
        ("type", "unknown or empty type"),
        ("size", "exceeds message_size_bytes_max"),
    ],
)
def test_bad_envelope_is_refused(field: str, message: str) -> None:
    with pytest.raises(PeerProtocolError, match=message):
        check_envelope(_mutated(field), sender=SENDER, recipient=RECIPIENT)


def test_payload_of_a_future_type_is_unknown() -> None:
    # Field 99 of Payload: a type this node does not know parses as unknown fields.
    envelope = _envelope(4)
    raw = envelope.SerializeToString()
    payload = b"\xa2\x06\x02hi"  # field 99, length-delimited, "hi"
    raw += b"\x22" + encode_varint(len(payload)) + payload
    parsed = wire_pb2.Envelope.FromString(raw)
    with pytest.raises(PeerProtocolError, match="payload 1 has an unknown"):
        check_envelope(parsed, sender=SENDER, recipient=RECIPIENT)
