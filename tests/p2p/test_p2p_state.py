"""Outbox and seen-id state of the messenger."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from node.p2p._state import Outbox, SeenIds
from node.proto import wire_pb2

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


def test_seen_ids_restored_from_a_watermark_and_ids_above() -> None:
    seen = SeenIds()
    seen.add_all([2, 9])
    seen.restore(5, [7, 8])
    assert seen.contiguous_max == 5
    assert [i in seen for i in range(1, 11)] == [True] * 5 + [False, True, True, True, False]
    seen.add_all([6])
    assert seen.contiguous_max == 9


def test_outbox_keeps_what_is_unacknowledged() -> None:
    box = Outbox()
    for message_id in (1, 2, 3):
        envelope = wire_pb2.Envelope(id=message_id, sender=OTHER, recipient=PEER)
        box.add_encoded(message_id, envelope.SerializeToString())
    assert box.next_id == 4
    assert box.acknowledge([1, 3, 7]) == [1, 3]
    assert list(box.unacked) == [2]
    assert wire_pb2.Envelope.FromString(box.unacked[2][2:]).id == 2
