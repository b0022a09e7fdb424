"""Frames on /scnode/msg/1.0.0: a 4-byte big-endian length, then a protobuf Frame.

Pure functions only. Frames are assembled from envelope bytes that were
serialised once (when they were logged), so a frame of a thousand messages
costs one join rather than a thousand protobuf copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from google.protobuf.message import DecodeError

from node.core.constants import (
    address_bytes,
    frame_messages_max,
    frame_size_bytes_max,
    message_payloads_max,
    message_size_bytes_max,
    wire_format_version,
)
from node.core.errors import PeerProtocolError
from node.p2p._limits import ByteBudget
from node.proto import wire_pb2

LENGTH_PREFIX_BYTES = 4

# Protobuf tags of Frame's fields (wire.proto): version=1 varint, messages=2 and
# acks=3 (packed) length-delimited.
_TAG_VERSION = b"\x08"
_TAG_MESSAGES = b"\x12"
_TAG_ACKS = b"\x1a"
_VERSION_FIELD = _TAG_VERSION + bytes([wire_format_version])
# LogRecord.sent_message = 13, SentMessage.peer = 1 and .envelope = 2 (log.proto).
_TAG_RECORD_SENT_MESSAGE = b"\x6a"
_TAG_SENT_PEER = b"\x0a"
_TAG_SENT_ENVELOPE = b"\x12"


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer below 2**64."""
    assert 0 <= value < 2**64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def envelope_field(envelope_bytes: bytes) -> bytes:
    """One serialised envelope as a Frame.messages field (tag, length, bytes)."""
    return _TAG_MESSAGES + encode_varint(len(envelope_bytes)) + envelope_bytes


def encode_frame(envelope_fields: Iterable[bytes], acks: Sequence[int]) -> bytes:
    """A length-prefixed Frame from pre-encoded envelope fields and ack ids.

    Args:
        envelope_fields: results of ``envelope_field``.
        acks: ids of the peer's messages that we hold durably.
    """
    parts = [_VERSION_FIELD, *envelope_fields]
    if acks:
        packed = b"".join(encode_varint(ack) for ack in acks)
        parts.append(_TAG_ACKS + encode_varint(len(packed)) + packed)
    body = b"".join(parts)
    assert len(body) <= frame_size_bytes_max, "caller bounds the frame"
    return len(body).to_bytes(LENGTH_PREFIX_BYTES, "big") + body


def sent_message_payload(peer: bytes, envelope_bytes: bytes) -> bytes:
    """``LogRecord(sent_message=SentMessage(peer, envelope)).SerializeToString()``.

    Built from the envelope's bytes, for EventLog.append_payloads: the hot path
    serialises each envelope once, for the log and the wire alike.
    """
    assert len(peer) == address_bytes
    inner = (
        _TAG_SENT_PEER
        + bytes([address_bytes])
        + peer
        + _TAG_SENT_ENVELOPE
        + encode_varint(len(envelope_bytes))
        + envelope_bytes
    )
    return _TAG_RECORD_SENT_MESSAGE + encode_varint(len(inner)) + inner


def ack_field_bytes(acks: Sequence[int]) -> int:
    """An upper bound of the bytes that ``acks`` add to a frame."""
    return 16 + 10 * len(acks)


class FrameDecoder:
    """Splits a byte stream into frame bodies, refusing oversize frames early.

    Args:
        frame_bytes_max: the largest frame body accepted.
        budget: shared by the decoders of all peers; the bytes of an unfinished
            frame held here are taken from it (``close`` gives them back).
    """

    def __init__(
        self, frame_bytes_max: int = frame_size_bytes_max, budget: ByteBudget | None = None
    ) -> None:
        assert frame_bytes_max > 0
        self._frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self._budget = budget
        self._charged = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the frame bodies now complete.

        Raises:
            PeerProtocolError: a length prefix exceeds the frame bound, or the
                unfinished frame would pass the shared budget. The stream cannot be
                resynchronised after this.
        """
        self._buffer += data
        bodies: list[bytes] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= LENGTH_PREFIX_BYTES:
            length = int.from_bytes(buffer[offset : offset + LENGTH_PREFIX_BYTES], "big")
            if length > self._frame_bytes_max:
                raise PeerProtocolError(
                    f"frame length {length} exceeds frame_size_bytes_max {self._frame_bytes_max}"
                )
            end = offset + LENGTH_PREFIX_BYTES + length
            if len(buffer) < end:
                break
            bodies.append(bytes(buffer[offset + LENGTH_PREFIX_BYTES : end]))
            offset = end
        if offset:
            del buffer[:offset]
        if self._budget is not None:
            self._charged = self._budget.resize(self._charged, len(buffer))
        return bodies

    def close(self) -> None:
        """Drop the unfinished frame and give its bytes back to the budget."""
        if self._budget is not None:
            self._charged = self._budget.resize(self._charged, 0)
        self._buffer = bytearray()

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame held so far."""
        return len(self._buffer)


def parse_frame(body: bytes) -> wire_pb2.Frame:
    """Decode a frame body.

    Raises:
        PeerProtocolError: not a Frame, a version this node does not speak, or more
            than frame_messages_max messages.
    """
    frame = wire_pb2.Frame()
    try:
        frame.ParseFromString(body)
    except DecodeError as error:
        raise PeerProtocolError(f"malformed frame ({len(body)} bytes): {error}") from None
    if frame.version != wire_format_version:
        raise PeerProtocolError(
            f"frame version {frame.version} unsupported (expected {wire_format_version})"
        )
    if len(frame.messages) > frame_messages_max:
        raise PeerProtocolError(
            f"frame of {len(frame.messages)} messages exceeds frame_messages_max"
            f" ({frame_messages_max})"
        )
    return frame


def check_envelope(envelope: wire_pb2.Envelope, *, sender: bytes, recipient: bytes) -> None:
    """Validate an envelope against the authenticated peer and this node.

    Args:
        envelope: as received.
        sender: the address proven by the connection's peer id.
        recipient: this node's address.

    Raises:
        PeerProtocolError: a field is wrong; the message names it.
    """
    assert len(sender) == address_bytes
    assert len(recipient) == address_bytes
    if envelope.sender != sender:
        raise PeerProtocolError(
            f"envelope {envelope.id}: sender 0x{envelope.sender.hex()} does not match "
            f"the authenticated peer 0x{sender.hex()}"
        )
    if envelope.recipient != recipient:
        raise PeerProtocolError(
            f"envelope {envelope.id}: recipient 0x{envelope.recipient.hex()} is not this node"
        )
    if envelope.id == 0:
        raise PeerProtocolError("envelope id 0: ids start at 1")
    if not envelope.payloads:
        raise PeerProtocolError(f"envelope {envelope.id}: no payloads")
    if len(envelope.payloads) > message_payloads_max:
        raise PeerProtocolError(
            f"envelope {envelope.id}: {len(envelope.payloads)} payloads exceed "
            f"message_payloads_max ({message_payloads_max})"
        )
    for index, payload in enumerate(envelope.payloads):
        if payload.WhichOneof("body") is None:
            raise PeerProtocolError(
                f"envelope {envelope.id}: payload {index} has an unknown or empty type"
            )
    size = envelope.ByteSize()
    if size > message_size_bytes_max:
        raise PeerProtocolError(
            f"envelope {envelope.id}: {size} bytes exceeds message_size_bytes_max"
        )
