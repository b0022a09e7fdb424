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
from node.engine._records import now_ms, voucher_payload
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
    """Log the step's outgoing payloads as messages; the transport gets them after the write.

    A voucher of ours that its AcceptedVoucher record holds already is not logged a
    second time: the SentMessage names its channel, and the message carries it after
    the other payloads (``EngineState.sent_envelope`` rebuilds the same bytes).
    """
    sender = address_to_bytes(state.me)
    time_ms = now_ms()
    for recipient, payloads in step.outgoing.items():
        peer = address_to_bytes(recipient)
        for chunk in message_chunks(payloads):
            message_id = state.next_id(peer)
            kept, channels = _logged_apart(state, chunk)
            record = log_pb2.LogRecord(time_ms=time_ms)
            record.sent_message.peer = peer
            logged = record.sent_message.envelope
            logged.id, logged.sender, logged.recipient = message_id, sender, peer
            logged.payloads.extend(kept)
            record.sent_message.voucher_channels.extend(channels)
            encoded = state.sent_envelope(record.sent_message)
            # As the fold of this record would, without building the envelope again.
            state.add_sent(peer, message_id, encoded)
            step.records.append(record)
            step.messages.setdefault(peer, []).append((message_id, encoded))
    step.outgoing.clear()


def _logged_apart(
    state: EngineState, payloads: Sequence[wire_pb2.Payload]
) -> tuple[list[wire_pb2.Payload], list[bytes]]:
    """The payloads a SentMessage keeps, and the channels whose voucher it leaves out
    (each our latest signed voucher on its channel, once per message)."""
    kept: list[wire_pb2.Payload] = []
    channels: list[bytes] = []
    for payload in payloads:
        if payload.WhichOneof("body") == "voucher":
            channel = payload.voucher.channel_id
            latest = state.sent_vouchers.get(channel)
            if (
                latest is not None
                and channel not in channels
                and payload == voucher_payload(latest)
            ):
                channels.append(channel)
                continue
        kept.append(payload)
    return kept, channels
