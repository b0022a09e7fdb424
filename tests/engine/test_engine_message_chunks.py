"""What one loop step sends a peer is cut into messages the transport accepts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.constants import message_payloads_max, message_size_bytes_max
from node.engine import message_chunks
from node.proto import wire_pb2


def _payloads(sizes: list[int]) -> list[wire_pb2.Payload]:
    return [
        wire_pb2.Payload(objective_id=str(index), ack=wire_pb2.Ack(message_ids=[1] * size))
        for index, size in enumerate(sizes)
    ]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 50, 20_000, 300_000]), max_size=2_500))
def test_chunks_keep_order_and_fit_a_message(sizes: list[int]) -> None:
    payloads = _payloads(sizes)
    chunks = message_chunks(payloads)
    assert [p for chunk in chunks for p in chunk] == payloads
    for chunk in chunks:
        assert 0 < len(chunk) <= message_payloads_max
        envelope = wire_pb2.Envelope(id=2**63, sender=b"a" * 20, recipient=b"b" * 20)
        envelope.payloads.extend(chunk)
        assert envelope.ByteSize() <= message_size_bytes_max


def test_a_step_of_many_vouchers_needs_few_messages() -> None:
    chunks = message_chunks(_payloads([0] * (3 * message_payloads_max + 1)))
    assert [len(chunk) for chunk in chunks] == [message_payloads_max] * 3 + [1]
