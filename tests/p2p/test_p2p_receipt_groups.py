"""Big bursts of messages: every receipt write stays within the log's batch bound, and a
message with too many payloads is refused on both ends."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from node.core.constants import (
    inbound_records_per_payload_max,
    log_batch_records_max,
    message_payloads_max,
)
from node.core.errors import InvalidValueError, PeerProtocolError
from node.home import NodeHome
from node.log import EventLog
from node.p2p import P2PConfig, P2PNode
from node.p2p._framing import check_envelope
from node.p2p._messenger import receipt_groups
from node.proto import log_pb2, wire_pb2
from tests.p2p.conftest import ALICE, BOB
from tests.p2p.test_p2p_messaging import Inbox, _payload, _raw, eventually, running

MESSAGES = 15  # of message_payloads_max payloads each: 3 log batches' worth at 2 records each


def _payloads(count: int, label: str = "x") -> list[wire_pb2.Payload]:
    return [_payload(f"{label}{index}") for index in range(count)]


def _envelopes(sizes: Sequence[int]) -> list[wire_pb2.Envelope]:
    return [wire_pb2.Envelope(id=i + 1, payloads=_payloads(n)) for i, n in enumerate(sizes)]


@given(st.lists(st.integers(1, message_payloads_max), max_size=40))
def test_receipt_groups_keep_order_and_fit_one_log_batch(sizes: list[int]) -> None:
    envelopes = _envelopes(sizes)
    groups = receipt_groups(envelopes, [e.id for e in envelopes])
    assert [e.id for group, _ in groups for e in group] == [e.id for e in envelopes]
    for group, ids in groups:
        assert ids == [e.id for e in group]
        payloads = sum(len(e.payloads) for e in group)
        assert 0 < payloads * inbound_records_per_payload_max + 2 <= log_batch_records_max


def test_a_message_with_too_many_payloads_is_refused() -> None:
    envelope = wire_pb2.Envelope(
        id=1,
        sender=_raw(ALICE.address),
        recipient=_raw(BOB.address),
        payloads=_payloads(message_payloads_max + 1),
    )
    with pytest.raises(PeerProtocolError, match="payloads exceed message_payloads_max"):
        check_envelope(envelope, sender=_raw(ALICE.address), recipient=_raw(BOB.address))
    del envelope.payloads[-1]
    check_envelope(envelope, sender=_raw(ALICE.address), recipient=_raw(BOB.address))


def _two_records_each(
    sender: bytes, envelopes: Sequence[wire_pb2.Envelope]
) -> list[log_pb2.LogRecord]:
    """What a receiver may log per payload at most (say, an accepted state and a decision)."""
    return [
        log_pb2.LogRecord(rejected=log_pb2.Rejected(reason=payload.objective_id, peer=sender))
        for envelope in envelopes
        for payload in envelope.payloads
        for _ in range(inbound_records_per_payload_max)
    ]


@pytest.mark.slow
@pytest.mark.integration
async def test_a_burst_beyond_one_log_batch_is_received_whole(homes: dict[str, NodeHome]) -> None:
    inbox = Inbox()
    with (
        EventLog.open(homes["alice"].log_path) as alice_log,
        EventLog.open(homes["bob"].log_path) as bob_log,
    ):
        alice = P2PNode(
            private_key=homes["alice"].node_key(),
            state_dir=homes["alice"].p2p_path,
            log=alice_log,
            config=P2PConfig(gossip=False),
        )
        bob = P2PNode(
            private_key=homes["bob"].node_key(),
            state_dir=homes["bob"].p2p_path,
            log=bob_log,
            config=P2PConfig(gossip=False),
            inbound_records=_two_records_each,
        )
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(alice.run)
                await nursery.start(bob.run)
                nursery.start_soon(inbox.collect, bob)
                with pytest.raises(InvalidValueError, match="message_payloads_max"):
                    await alice.send(BOB.address, _payloads(message_payloads_max + 1))
                # Queued before the connection exists: they leave together, in one frame.
                for index in range(MESSAGES):
                    await alice.send(BOB.address, _payloads(message_payloads_max, f"m{index}."))
                await alice.connect(bob.multiaddrs()[0])
                await eventually(lambda: len(inbox.ids_from(ALICE.address)) == MESSAGES)
                await eventually(lambda: alice.messenger.unacknowledged(BOB.address) == 0)
                nursery.cancel_scope.cancel()
        records = list(bob_log.read())
    assert inbox.ids_from(ALICE.address) == list(range(1, MESSAGES + 1))
    rejected = [r.rejected.reason for r in records if r.WhichOneof("payload") == "rejected"]
    assert len(rejected) == MESSAGES * message_payloads_max * inbound_records_per_payload_max
    receipts = [r for r in records if r.WhichOneof("payload") == "received_messages"]
    assert sorted(i for r in receipts for i in r.received_messages.message_ids) == list(
        range(1, MESSAGES + 1)
    )
    assert len(receipts) >= 3  # at least three log batches' worth


@pytest.mark.slow
@pytest.mark.integration
async def test_a_message_larger_than_the_frame_target_goes_alone(
    homes: dict[str, NodeHome],
) -> None:
    inbox = Inbox()
    big = [_payload("b" * 2000) for _ in range(300)]  # ~600 KB: over the 256 KiB target
    async with running(homes["bob"], inbox) as bob, running(homes["alice"], Inbox()) as alice:
        for label in ("before", "after"):
            await alice.send(BOB.address, [_payload(label)])
        await alice.send(BOB.address, big)
        await alice.connect(bob.multiaddrs()[0])
        await eventually(lambda: len(inbox.ids_from(ALICE.address)) == 3)
    sizes = [len(e.payloads) for d in inbox.deliveries for e in d.envelopes]
    assert sizes == [1, 1, 300]
