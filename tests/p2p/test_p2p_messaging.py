"""Messaging between real libp2p hosts in one process, with real event logs.

Each node's messages are owned by a ``MessageOwner`` (it logs what it sends and
receives, as the engine does). Covers acks, the outbox rebuilt from the log after
a restart, and hostile input
from a raw libp2p host: garbage, an oversize length prefix, a forged sender,
an unknown payload type and replayed ids. Each is refused with a log line and
the node keeps serving an honest peer.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import trio
from libp2p.abc import INetStream
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

from node.core.errors import InvalidValueError
from node.home import NodeHome
from node.log import EventLog
from node.p2p import (
    MESSAGE_PROTOCOL,
    Delivery,
    MessengerOptions,
    P2PConfig,
    P2PNode,
    PeerStore,
    make_host,
)
from node.p2p._framing import FrameDecoder, encode_frame, envelope_field, parse_frame
from node.p2p._host import listen_multiaddrs
from node.p2p._messenger import NETWORK_ERRORS
from node.proto import log_pb2, wire_pb2
from node.testing import MessageOwner
from tests.p2p.conftest import ALICE, BOB, IRENE

pytestmark = [pytest.mark.slow, pytest.mark.integration]
_POLL_S = 0.01


def _payload(label: str) -> wire_pb2.Payload:
    return wire_pb2.Payload(objective_id=label, ack=wire_pb2.Ack())


def _raw(address: str) -> bytes:
    return bytes.fromhex(address[2:])


async def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait until ``predicate`` holds; fail the test after ``timeout_s``."""
    polls = int(timeout_s / _POLL_S)
    for _ in range(polls):
        if predicate():
            return
        await trio.sleep(_POLL_S)
    raise AssertionError(f"condition not reached within {timeout_s} s")


class Inbox:
    """Collects the deliveries of a running node (logged and acknowledged)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    def ids_from(self, sender: str) -> list[int]:
        return [
            envelope.id
            for delivery in self.deliveries
            if delivery.sender == sender
            for envelope in delivery.envelopes
        ]

    def collect(self, delivery: Delivery) -> None:
        if delivery.envelopes:
            self.deliveries.append(delivery)


@dataclass
class Running:
    """A running P2PNode and the owner of its messages."""

    node: P2PNode
    owner: MessageOwner

    async def send(self, recipient: str, payloads: list[wire_pb2.Payload]) -> int:
        (message_id,) = await self.owner.send(recipient, [payloads])
        return message_id

    async def connect(self, multiaddr: str) -> str:
        return await self.node.connect(multiaddr)

    def multiaddrs(self) -> list[str]:
        return self.node.multiaddrs()

    def unacknowledged(self, recipient: str) -> int:
        return self.owner.unacknowledged(recipient)

    @property
    def host(self) -> Any:
        return self.node.host


@asynccontextmanager
async def running(
    home: NodeHome, inbox: Inbox, options: MessengerOptions | None = None
) -> AsyncIterator[Running]:
    """A P2PNode (no gossip) on a real event log, collecting into ``inbox``."""
    with EventLog.open(home.log_path) as log:
        node = P2PNode(
            private_key=home.node_key(),
            state_dir=home.p2p_path,
            config=P2PConfig(gossip=False, messenger=options or MessengerOptions()),
        )
        owner = MessageOwner(node, log, inbox.collect)
        owner.restore()
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            nursery.start_soon(owner.run)
            yield Running(node, owner)
            nursery.cancel_scope.cancel()


def _records(home: NodeHome, case: str) -> list[log_pb2.LogRecord]:
    with EventLog.open(home.log_path) as log:
        return [record for record in log.read() if record.WhichOneof("payload") == case]


async def test_messages_flow_both_ways_and_are_logged(homes: dict[str, NodeHome]) -> None:
    alice_inbox, bob_inbox = Inbox(), Inbox()
    async with (
        running(homes["alice"], alice_inbox) as alice,
        running(homes["bob"], bob_inbox) as bob,
    ):
        assert await alice.connect(bob.multiaddrs()[0]) == BOB.address
        for index in range(50):
            assert await alice.send(BOB.address, [_payload(f"a{index}")]) == index + 1
        for index in range(30):
            await bob.send(ALICE.address, [_payload(f"b{index}")])
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 50)
        await eventually(lambda: len(alice_inbox.ids_from(BOB.address)) == 30)
        await eventually(lambda: alice.unacknowledged(BOB.address) == 0)
        await eventually(lambda: bob.unacknowledged(ALICE.address) == 0)
    assert bob_inbox.ids_from(ALICE.address) == list(range(1, 51))
    assert alice_inbox.ids_from(BOB.address) == list(range(1, 31))
    labels = [e.payloads[0].objective_id for d in bob_inbox.deliveries for e in d.envelopes]
    assert labels == [f"a{index}" for index in range(50)]
    sent = _records(homes["alice"], "sent_message")
    assert [record.sent_message.envelope.id for record in sent] == list(range(1, 51))
    assert all(record.sent_message.peer == _raw(BOB.address) for record in sent)
    # Acknowledgements are not logged: an acknowledged message is only never sent again.
    assert _records(homes["alice"], "acknowledgement") == []
    received = _records(homes["bob"], "received_messages")
    assert sorted(i for r in received for i in r.received_messages.message_ids) == list(
        range(1, 51)
    )


async def test_outbox_is_rebuilt_from_the_log_after_a_restart(
    homes: dict[str, NodeHome],
) -> None:
    alice_inbox, bob_inbox = Inbox(), Inbox()
    async with running(homes["alice"], alice_inbox) as alice:
        for index in range(20):
            await alice.send(BOB.address, [_payload(f"early{index}")])
        assert alice.unacknowledged(BOB.address) == 20
    # Alice stopped with 20 logged, unacknowledged messages; Bob was never up.
    async with (
        running(homes["bob"], bob_inbox) as bob,
        running(homes["alice"], alice_inbox) as alice,
    ):
        assert alice.unacknowledged(BOB.address) == 20
        assert alice.owner.next_id(BOB.address) == 21
        await alice.send(BOB.address, [_payload("late")])
        await alice.connect(bob.multiaddrs()[0])
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 21)
        await eventually(lambda: alice.unacknowledged(BOB.address) == 0)
    assert bob_inbox.ids_from(ALICE.address) == list(range(1, 22))


class Attacker:
    """A raw libp2p host with Irene's key that writes whatever it is told."""

    def __init__(self) -> None:
        self.host = make_host(IRENE.key)
        self.acks: list[int] = []

    async def _collect_acks(self, stream: INetStream) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                data = await stream.read(65536)
            except NETWORK_ERRORS:
                return
            if not data:
                return
            for body in decoder.feed(data):
                self.acks.extend(parse_frame(body).acks)

    async def attack(self, target: Running, data: bytes) -> bool:
        """Write ``data`` on a fresh stream; True if the node reset the stream."""
        stream = await self.host.new_stream(target.host.get_id(), [MESSAGE_PROTOCOL])
        await stream.write(data)
        closed = False
        with trio.move_on_after(5):
            try:
                while await stream.read(1024):
                    pass
            except NETWORK_ERRORS as error:  # a reset is what the attacker waits for
                logging.getLogger(__name__).debug("stream reset by the node: %r", error)
            closed = True
        return closed


def _frame(*envelopes: wire_pb2.Envelope) -> bytes:
    return encode_frame([envelope_field(e.SerializeToString()) for e in envelopes], [])


def _envelope(message_id: int, *, sender: str, payload: wire_pb2.Payload) -> wire_pb2.Envelope:
    return wire_pb2.Envelope(
        id=message_id, sender=_raw(sender), recipient=_raw(BOB.address), payloads=[payload]
    )


async def test_hostile_input_is_refused_and_honest_peers_are_served(
    homes: dict[str, NodeHome], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node.p2p")
    alice_inbox, bob_inbox = Inbox(), Inbox()
    attacker = Attacker()
    async with (
        running(homes["bob"], bob_inbox) as bob,
        running(homes["alice"], alice_inbox) as alice,
        attacker.host.run(listen_multiaddrs()),
    ):
        attacker.host.set_stream_handler(MESSAGE_PROTOCOL, attacker._collect_acks)
        await attacker.host.connect(info_from_p2p_addr(Multiaddr(bob.multiaddrs()[0])))
        await alice.connect(bob.multiaddrs()[0])

        assert await attacker.attack(bob, b"\x00\x00\x00\x03\xff\xff\xff")
        assert await attacker.attack(bob, (1 << 31).to_bytes(4, "big") + b"x" * 100)
        forged = _envelope(1, sender=ALICE.address, payload=_payload("forged"))
        assert await attacker.attack(bob, _frame(forged))
        unknown = _envelope(1, sender=IRENE.address, payload=wire_pb2.Payload(objective_id="?"))
        assert await attacker.attack(bob, _frame(unknown))
        far = _envelope(2**63, sender=IRENE.address, payload=_payload("far ahead"))
        assert await attacker.attack(bob, _frame(far))

        honest = _envelope(1, sender=IRENE.address, payload=_payload("once"))
        stream = await attacker.host.new_stream(bob.host.get_id(), [MESSAGE_PROTOCOL])
        await stream.write(_frame(honest))
        await eventually(lambda: attacker.acks.count(1) >= 1)
        # Handled (logged and acknowledged) before: dropped and acknowledged again.
        await stream.write(_frame(honest, honest))
        await eventually(lambda: len(bob_inbox.ids_from(IRENE.address)) == 1)
        await eventually(lambda: attacker.acks.count(1) >= 3)

        for index in range(10):
            await alice.send(BOB.address, [_payload(f"honest{index}")])
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 10)
        await eventually(lambda: alice.unacknowledged(BOB.address) == 0)

    assert bob_inbox.ids_from(IRENE.address) == [1]
    assert bob_inbox.ids_from(ALICE.address) == list(range(1, 11))
    messages = [record.getMessage() for record in caplog.records]
    expected = [
        "malformed frame",
        "exceeds frame_size_bytes_max",
        "does not match the authenticated peer",
        "unknown or empty type",
        "id beyond the window",
        "already-handled message ids",
    ]
    for fragment in expected:
        assert any(fragment in message for message in messages), fragment
    assert sum(1 for m in messages if "rejected input from " + IRENE.address in m) == 5
    received = _records(homes["bob"], "received_messages")
    from_irene = [r for r in received if r.received_messages.peer == _raw(IRENE.address)]
    assert [list(r.received_messages.message_ids) for r in from_irene] == [[1]]


async def test_deduplication_survives_a_receiver_restart(homes: dict[str, NodeHome]) -> None:
    bob_inbox = Inbox()
    envelope = _envelope(1, sender=IRENE.address, payload=_payload("exactly-once"))
    for _ in range(2):
        attacker = Attacker()
        async with (
            running(homes["bob"], bob_inbox) as bob,
            attacker.host.run(listen_multiaddrs()),
        ):
            attacker.host.set_stream_handler(MESSAGE_PROTOCOL, attacker._collect_acks)
            await attacker.host.connect(info_from_p2p_addr(Multiaddr(bob.multiaddrs()[0])))
            stream = await attacker.host.new_stream(bob.host.get_id(), [MESSAGE_PROTOCOL])
            await stream.write(_frame(envelope))
            # The ack proves the restarted node handled the replay: it was dropped.
            await eventually(partial(operator.contains, attacker.acks, 1))
    assert bob_inbox.ids_from(IRENE.address) == [1]
    received = _records(homes["bob"], "received_messages")
    assert [list(record.received_messages.message_ids) for record in received] == [[1]]


async def test_running_node_dials_a_peer_added_to_its_store_file(
    homes: dict[str, NodeHome],
) -> None:
    alice_inbox, bob_inbox = Inbox(), Inbox()
    async with (
        running(homes["bob"], bob_inbox) as bob,
        running(homes["alice"], alice_inbox) as alice,
    ):
        # What `scnode connect MULTIADDR --home alice` does while Alice runs.
        store = PeerStore.load(homes["alice"].p2p_path)
        store.add(BOB.peer_id, bob.multiaddrs(), dial=True)
        store.save()
        network = alice.host.get_network()
        await eventually(lambda: bool(network.get_connections(bob.host.get_id())))
        await eventually(partial(_connected_in_store, alice, BOB.peer_id))
    persisted = PeerStore.load(homes["alice"].p2p_path).get(BOB.peer_id)
    assert persisted is not None
    assert persisted.dial
    assert not persisted.connected
    assert persisted.last_seen_ms > 0


def _connected_in_store(running: Running, peer_id: str) -> bool:
    record = running.node.peer_store.get(peer_id)
    return record is not None and record.connected


async def test_small_frames_still_deliver_everything(homes: dict[str, NodeHome]) -> None:
    # 2 KiB frames hold a few messages each.
    options = MessengerOptions(frame_bytes_max=2048)
    alice_inbox, bob_inbox = Inbox(), Inbox()
    async with (
        running(homes["bob"], bob_inbox, options) as bob,
        running(homes["alice"], alice_inbox, options) as alice,
    ):
        await alice.connect(bob.multiaddrs()[0])
        for index in range(0, 300, 30):
            payloads = [[_payload(f"{index + n:0>300}")] for n in range(30)]
            await alice.owner.send(BOB.address, payloads)
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 300)
    assert bob_inbox.ids_from(ALICE.address) == list(range(1, 301))
    assert len(bob_inbox.deliveries) >= 300 // 30  # many frames, each within 2 KiB


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"redial_backoff_ms_min": 5, "redial_backoff_ms_max": 1}, "redial_backoff_ms_min"),
        ({"redial_backoff_ms_min": 0}, "redial_backoff_ms_min"),
    ],
)
def test_messenger_options_are_checked(changes: dict[str, int], field: str) -> None:
    with pytest.raises(InvalidValueError, match=field):
        MessengerOptions(**changes)
