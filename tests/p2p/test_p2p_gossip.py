"""GossipSub announcements between real hosts: the directory and ledger offers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import pytest
import trio

from node.home import NodeHome
from node.p2p import P2PConfig, P2PNode
from node.proto import wire_pb2
from tests.p2p.conftest import ALICE, BOB, IRENE

pytestmark = [pytest.mark.slow, pytest.mark.integration]

IRENE_OFFER = wire_pb2.LedgerOffer(
    channel_id=b"\x11" * 32,
    counterparty=bytes.fromhex(BOB.address[2:]),
    asset=b"\x00" * 20,
    capacity=(5 * 10**18).to_bytes(32, "big"),
)


@asynccontextmanager
async def gossiping(
    home: NodeHome, ledgers: Callable[[], Sequence[wire_pb2.LedgerOffer]] = tuple
) -> AsyncIterator[P2PNode]:
    node = P2PNode(
        private_key=home.node_key(),
        state_dir=home.p2p_path,
        config=P2PConfig(announce_interval_ms=200),
        ledgers=ledgers,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        yield node
        nursery.cancel_scope.cancel()


async def test_announcements_reach_a_node_two_hops_away(homes: dict[str, NodeHome]) -> None:
    async with (
        gossiping(homes["alice"]) as alice,
        gossiping(homes["bob"]) as bob,
        gossiping(homes["irene"], lambda: [IRENE_OFFER]) as irene,
    ):
        heard_irene = trio.Event()
        assert alice.gossip is not None
        alice.gossip.add_entry_listener(
            lambda entry: heard_irene.set() if entry.address == IRENE.address else None
        )
        await alice.connect(bob.multiaddrs()[0])
        await irene.connect(bob.multiaddrs()[0])
        with trio.fail_after(15):
            await heard_irene.wait()
        irene_raw = bytes.fromhex(IRENE.address[2:])
        entry = alice.directory.lookup(irene_raw)
        assert entry is not None
        assert entry.peer_id == irene.peer_id
        assert entry.multiaddrs == tuple(irene.multiaddrs())
        assert list(entry.ledgers) == [IRENE_OFFER]
        # Alice is not connected to Irene: she knows her from gossip only.
        assert not alice.host.get_network().get_connections(irene.host.get_id())
        record = alice.peer_store.by_address(IRENE.address)
        assert record is not None
        assert not record.dial
        assert bob.directory.lookup(bytes.fromhex(ALICE.address[2:])) is not None
