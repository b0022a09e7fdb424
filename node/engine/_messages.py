"""The step's outgoing payloads made into messages, each logged as a SentMessage.

Payloads to one peer share messages, cut to the wire's count and size bounds;
each message gets the next id of that peer and is logged in the step's write,
so the transport can send it again after any crash until the peer acknowledges.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from node.core import address_to_bytes
from node.core.constants import message_payloads_max, message_size_bytes_max
from node.engine._records import now_ms
from node.engine._state import EngineState
from node.engine._step import Step
from node.proto import log_pb2, wire_pb2

# Room for an Envelope's id, addresses and each payload's tag and length.
_ENVELOPE_OVERHEAD_BYTES: Final = 128
_PAYLOAD_OVERHEAD_BYTES: Final = 8


def message_chunks(payloads: Sequence[wire_pb2.Payload]) -> list[list[wire_pb2.Payload]]:
    """``payloads`` in order, cut into messages within the count and size bounds."""
    room = message_size_bytes_max - _ENVELOPE_OVERHEAD_BYTES
    chunks: list[list[wire_pb2.Payload]] = [[]]
    size = 0
    for payload in payloads:
        payload_size = payload.ByteSize() + _PAYLOAD_OVERHEAD_BYTES
        full = len(chunks[-1]) >= message_payloads_max or size + payload_size > room
        if chunks[-1] and full:
            chunks.append([])
            size = 0
        chunks[-1].append(payload)
        size += payload_size
    return [chunk for chunk in chunks if chunk]


def build_messages(state: EngineState, step: Step) -> None:
    """Log the step's outgoing payloads as messages; the transport gets them after the write."""
    sender = address_to_bytes(state.me)
    time_ms = now_ms()
    for recipient, payloads in step.outgoing.items():
        peer = address_to_bytes(recipient)
        for chunk in message_chunks(payloads):
            message_id = state.next_id(peer)
            envelope = wire_pb2.Envelope(
                id=message_id, sender=sender, recipient=peer, payloads=chunk
            )
            record = log_pb2.LogRecord(time_ms=time_ms)
            record.sent_message.peer = peer
            record.sent_message.envelope.CopyFrom(envelope)
            encoded = envelope.SerializeToString()
            # As the fold of this record would, without encoding the envelope again.
            state.add_sent(peer, message_id, encoded)
            step.records.append(record)
            step.messages.setdefault(peer, []).append((message_id, encoded))
    step.outgoing.clear()
