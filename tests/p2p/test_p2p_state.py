"""Outbox and seen-id state, and its rebuild from log records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.p2p._state import MessagingState, SeenIds, rebuild_state
from node.proto import log_pb2, wire_pb2

PEER = b"\x01" * 20
OTHER = b"\x02" * 20


@given(st.lists(st.lists(st.integers(min_value=1, max_value=60), max_size=10), max_size=10))
def test_seen_ids_behave_like_a_set(batches: list[list[int]]) -> None:
    seen = SeenIds()
    model: set[int] = set()
    for batch in batches:
        seen.add_all(batch)
        model.update(batch)
        assert len(seen) == len(model)
        for candidate in range(0, 62):
            assert (candidate in seen) == (candidate in model)
    assert seen.sparse_count == len([i for i in model if i > seen.contiguous_max])


def test_seen_ids_compact_contiguous_runs() -> None:
    seen = SeenIds()
    seen.add_all(range(1000, 0, -1))
    assert seen.contiguous_max == 1000
    assert seen.sparse_count == 0
    assert "1" not in seen


def _sent(peer: bytes, message_id: int) -> log_pb2.LogRecord:
    envelope = wire_pb2.Envelope(id=message_id, sender=OTHER, recipient=peer)
    envelope.payloads.add(objective_id=f"m{message_id}", ack=wire_pb2.Ack())
    return log_pb2.LogRecord(sent_message=log_pb2.SentMessage(peer=peer, envelope=envelope))


def test_rebuild_keeps_unacknowledged_and_counts_ids() -> None:
    records = [
        _sent(PEER, 1),
        _sent(PEER, 2),
        _sent(PEER, 3),
        log_pb2.LogRecord(acknowledgement=log_pb2.Acknowledgement(peer=PEER, message_ids=[1, 3])),
        log_pb2.LogRecord(
            received_messages=log_pb2.ReceivedMessages(peer=OTHER, message_ids=[1, 2, 5])
        ),
        log_pb2.LogRecord(chain_event=log_pb2.ChainEvent(block_number=9)),
    ]
    state = rebuild_state(iter(records))
    box = state.outbox(PEER)
    assert list(box.unacked) == [2]
    assert box.next_id == 4
    assert wire_pb2.Envelope.FromString(box.unacked[2][2:]).payloads[0].objective_id == "m2"
    seen = state.seen_ids(OTHER)
    assert [message_id in seen for message_id in (1, 2, 3, 4, 5)] == [
        True,
        True,
        False,
        False,
        True,
    ]
    assert state.outbox(OTHER).next_id == 1


def test_replayed_sent_record_is_idempotent() -> None:
    state = MessagingState()
    state.apply(_sent(PEER, 1))
    state.apply(_sent(PEER, 1))
    assert list(state.outbox(PEER).unacked) == [1]
    assert state.outbox(PEER).acknowledge([1, 7]) == [1]
