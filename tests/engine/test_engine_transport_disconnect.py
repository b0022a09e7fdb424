"""``Transport.disconnect`` on the in-process transport: a peer cut off for a while."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.core.errors import InvalidValueError
from node.engine import MemoryNetwork
from node.proto import wire_pb2
from tests.p2p.conftest import ALICE, BOB


def _envelope(message_id: int) -> bytes:
    return wire_pb2.Envelope(
        id=message_id,
        sender=bytes.fromhex(ALICE.address[2:]),
        recipient=bytes.fromhex(BOB.address[2:]),
        payloads=[wire_pb2.Payload(objective_id=f"m{message_id}", ack=wire_pb2.Ack())],
    ).SerializeToString()


async def test_a_disconnected_peer_is_dropped_both_ways_until_its_backoff_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    alice, bob = network.endpoint(ALICE.address), network.endpoint(BOB.address)
    async with trio.open_nursery() as nursery:
        await nursery.start(alice.run)
        await nursery.start(bob.run)
        bob.disconnect(ALICE.address, 10.0)
        alice.transmit(BOB.address, [(1, _envelope(1))])
        with trio.move_on_after(5):
            delivery = await bob.deliveries.receive()
            raise AssertionError(f"delivered while cut off: {delivery}")
        # After the backoff, Alice's resend goes through and Bob's ack comes back.
        delivery = await bob.deliveries.receive()
        assert trio.current_time() >= 10.0
        assert [envelope.id for envelope in delivery.envelopes] == [1]
        bob.acknowledge(ALICE.address, [1])
        ack = await alice.deliveries.receive()
        assert ack.acknowledged == (1,)
        assert alice.unacknowledged(BOB.address) == 0
        with pytest.raises(InvalidValueError, match="backoff_s"):
            bob.disconnect(ALICE.address, -1.0)
        nursery.cancel_scope.cancel()
