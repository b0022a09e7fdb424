"""Hostile peers against real libp2p hosts on 127.0.0.1: the node stays up, stays within
its bounds and goes on serving honest peers.

Covers a poisoned peer store file and a poisoned gossip announcement (each once crashed
every restart), a flooding peer (throttled by its token buckets), unfinished frames
(one stream per peer, one budget for all), silent connections (closed, and newcomers
still get in), and the owner's ``disconnect`` of a peer.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from libp2p.abc import INetStream
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V12
from libp2p.pubsub.pb import rpc_pb2
from multiaddr import Multiaddr

from node.core.constants import frame_size_bytes_max
from node.home import NodeHome
from node.log import EventLog
from node.p2p import (
    ANNOUNCEMENT_TOPIC,
    MESSAGE_PROTOCOL,
    MessengerOptions,
    P2PConfig,
    P2PNode,
    PeerStore,
    make_host,
)
from node.p2p._framing import encode_varint
from node.p2p._host import listen_multiaddrs
from node.p2p._messenger import NETWORK_ERRORS
from node.testing import MessageOwner
from tests.p2p.conftest import ALICE, BOB, IRENE
from tests.p2p.test_p2p_messaging import (
    Inbox,
    Running,
    _envelope,
    _frame,
    _payload,
    eventually,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
POISON = f"/ip4/999.999.999.999/tcp/1/p2p/{IRENE.peer_id}"


@asynccontextmanager
async def running(home: NodeHome, inbox: Inbox, config: P2PConfig) -> AsyncIterator[Running]:
    """A P2PNode with ``config`` on a real event log, collecting into ``inbox``."""
    with EventLog.open(home.log_path) as log:
        node = P2PNode(private_key=home.node_key(), state_dir=home.p2p_path, config=config)
        owner = MessageOwner(node, log, inbox.collect)
        owner.restore()
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            nursery.start_soon(owner.run)
            yield Running(node, owner)
            nursery.cancel_scope.cancel()


_QUIET = P2PConfig(gossip=False)


def _poison_store(home: NodeHome, bob_multiaddr: str) -> None:
    """The attack's result: Irene's bad address, to dial, first in the store."""
    peers = [
        {"peer_id": IRENE.peer_id, "multiaddrs": [POISON], "dial": True, "last_seen_ms": 9},
        {"peer_id": BOB.peer_id, "multiaddrs": [bob_multiaddr], "dial": True},
        {"peer_id": "not a peer", "multiaddrs": [POISON], "dial": True},
    ]
    home.p2p_path.mkdir(parents=True, exist_ok=True)
    (home.p2p_path / "peers.json").write_text(json.dumps({"version": 1, "peers": peers}))


async def test_a_poisoned_peer_store_stops_neither_the_node_nor_its_restart(
    homes: dict[str, NodeHome], caplog: pytest.LogCaptureFixture
) -> None:
    alice_inbox, bob_inbox = Inbox(), Inbox()
    async with running(homes["bob"], bob_inbox, _QUIET) as bob:
        _poison_store(homes["alice"], bob.multiaddrs()[0])
        for restart in range(2):
            async with running(homes["alice"], alice_inbox, _QUIET) as alice:
                network = alice.host.get_network()
                await eventually(lambda n=network: bool(n.get_connections(bob.host.get_id())))
                await trio.sleep(1.5)  # the redial loop died 1 s after such a start
                await alice.send(BOB.address, [_payload(f"after restart {restart}")])
                await eventually(lambda n=restart: len(bob_inbox.ids_from(ALICE.address)) == n + 1)
    assert any("dropped an address" in r.message for r in caplog.records)
    assert any("dropped an entry" in r.message for r in caplog.records)
    stored = PeerStore.load(homes["alice"].p2p_path)
    assert all("999" not in addr for record in stored.records() for addr in record.multiaddrs)


async def test_a_poisoned_announcement_stops_neither_the_node_nor_its_restart(
    homes: dict[str, NodeHome], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node.p2p")
    gossip = P2PConfig(announce_interval_ms=200)
    inbox = Inbox()
    async with running(homes["bob"], inbox, gossip) as bob:
        async with running(homes["irene"], Inbox(), gossip) as irene:
            assert irene.node.gossip is not None
            irene.node.gossip._multiaddrs = lambda: [POISON]
            await irene.connect(bob.multiaddrs()[0])

            def refused() -> bool:
                return any(
                    "rejected announcement" in r.message and "IPv4" in r.message
                    for r in caplog.records
                )

            await eventually(refused, timeout_s=20)
        # Irene went offline, as the attacker did; the victim outlived the 1 s redial.
        await trio.sleep(1.5)
        entry = bob.node.directory.lookup(bytes.fromhex(IRENE.address[2:]))
        assert entry is None or POISON not in entry.multiaddrs
    async with running(homes["bob"], inbox, gossip) as bob:
        await trio.sleep(1.5)
        record = bob.node.peer_store.get(IRENE.peer_id)
        assert record is None or POISON not in record.multiaddrs


async def _drain(stream: INetStream) -> None:
    """Take what the node sends back (acks) and forget it."""
    try:
        while await stream.read(65536):
            pass
    except NETWORK_ERRORS:
        return


class RawPeer:
    """A libp2p host with any key that writes what it is told on message streams."""

    def __init__(self, key: bytes) -> None:
        self.host = make_host(key)

    @asynccontextmanager
    async def connected(self, target: Running) -> AsyncIterator[RawPeer]:
        async with self.host.run(listen_multiaddrs()):
            self.host.set_stream_handler(MESSAGE_PROTOCOL, _drain)
            await self.host.connect(info_from_p2p_addr(Multiaddr(target.multiaddrs()[0])))
            yield self


async def _flood(peer: RawPeer, target: Running, duration_s: float) -> int:
    """Valid envelopes from Irene, 100 a frame, as fast as the stream takes them."""
    stream = await peer.host.new_stream(target.host.get_id(), [MESSAGE_PROTOCOL])
    sent = 0
    with trio.move_on_after(duration_s):
        while True:
            frame = _frame(
                *(
                    _envelope(sent + n, sender=IRENE.address, payload=_payload(f"flood{n}"))
                    for n in range(1, 101)
                )
            )
            await stream.write(frame)
            sent += 100
    return sent


async def test_a_flooding_peer_is_throttled_and_an_honest_peer_is_served(
    homes: dict[str, NodeHome],
) -> None:
    rate = 300
    config = P2PConfig(gossip=False, messenger=MessengerOptions(peer_messages_per_s_max=rate))
    bob_inbox = Inbox()
    async with (
        running(homes["bob"], bob_inbox, config) as bob,
        running(homes["alice"], Inbox(), _QUIET) as alice,
        RawPeer(IRENE.key).connected(bob) as irene,
    ):
        await alice.connect(bob.multiaddrs()[0])
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_flood, irene, bob, 3.0)
            await trio.sleep(0.5)
            for index in range(10):
                await alice.send(BOB.address, [_payload(f"honest{index}")])
            # Alice's own bucket is full: her messages pass while Irene waits.
            await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 10, timeout_s=5)
            honest_s = trio.current_time() - started
        elapsed_s = trio.current_time() - started
    flooded = len(bob_inbox.ids_from(IRENE.address))
    assert bob.node.messenger.throttled > 0
    assert flooded <= rate * elapsed_s + rate + 100  # burst, plus one frame in hand
    assert honest_s < 3.0


async def _unfinished(peer: RawPeer, target: Running, announced: int, fill: int) -> bool:
    """A stream with a frame announced and never finished; False if the node reset it."""
    try:
        stream = await peer.host.new_stream(target.host.get_id(), [MESSAGE_PROTOCOL])
        await stream.write(announced.to_bytes(4, "big") + b"\x00" * fill)
        with trio.move_on_after(1.0):
            await stream.read(1)
            return False
    except NETWORK_ERRORS:
        return False
    return True


async def test_unfinished_frames_stay_within_one_stream_per_peer_and_the_budget(
    homes: dict[str, NodeHome], caplog: pytest.LogCaptureFixture
) -> None:
    frame_max = 256 * 1024
    options = MessengerOptions(frame_bytes_max=frame_max, unfinished_frame_bytes_max=2 * frame_max)
    bob_inbox = Inbox()
    attackers = [RawPeer(IRENE.key), RawPeer(secrets.token_bytes(31).rjust(32, b"\x03"))]
    attackers.append(RawPeer(secrets.token_bytes(31).rjust(32, b"\x04")))
    async with (
        running(homes["bob"], bob_inbox, P2PConfig(gossip=False, messenger=options)) as bob,
        running(homes["alice"], Inbox(), _QUIET) as alice,
        attackers[0].connected(bob),
        attackers[1].connected(bob),
        attackers[2].connected(bob),
    ):
        budget = bob.node.messenger.unfinished
        peak = 0
        async with trio.open_nursery() as nursery:
            for attacker in attackers:
                for _ in range(5):
                    nursery.start_soon(_unfinished, attacker, bob, frame_max, 200 * 1024)
            for _ in range(40):
                await trio.sleep(0.05)
                peak = max(peak, budget.used)
                assert len(bob.node.messenger._inbound) <= len(attackers)
        assert peak <= 2 * frame_max
        assert peak >= 200 * 1024
        await alice.connect(bob.multiaddrs()[0])
        await alice.send(BOB.address, [_payload("still served")])
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 1)
    messages = [record.getMessage() for record in caplog.records]
    assert any("unfinished frames of all peers" in m for m in messages)
    assert bob.node.messenger.unfinished.used == 0


def test_many_unfinished_frames_do_not_grow_a_node_process() -> None:
    """scripts/attack_frames.py against a node process: 40 streams, each announcing a
    4 MiB frame and sending all of it but 4 bytes (160 MiB held before the bounds)."""
    result = subprocess.run(
        [sys.executable, "scripts/attack_frames.py", "--streams", "40", "--hold-s", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["victim_alive"]
    assert figures["streams_filled"] <= 2
    assert figures["rss_mib_growth"] < 2 * frame_size_bytes_max / 2**20 + 24


async def _silent_socket(port: int, closed: list[float]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    started = trio.current_time()
    async with stream:
        try:
            while await stream.receive_some(1024):
                pass
        except trio.BrokenResourceError:
            pass
    closed.append(trio.current_time() - started)


async def test_silent_connections_are_closed_and_newcomers_still_get_in(
    homes: dict[str, NodeHome],
) -> None:
    config = P2PConfig(gossip=False, connection_silent_ms_max=500)
    async with running(homes["bob"], Inbox(), config) as bob:
        port = int(Multiaddr(bob.multiaddrs()[0]).value_for_protocol("tcp"))
        closed: list[float] = []
        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(_silent_socket, port, closed)
            await trio.sleep(0.3)
            # 100 silent sockets, more than the 64 handshake slots: a newcomer gets in.
            async with running(homes["alice"], Inbox(), _QUIET) as alice:
                with trio.fail_after(3):
                    assert await alice.connect(bob.multiaddrs()[0]) == BOB.address
            with trio.fail_after(8):
                await eventually(lambda: len(closed) == 100, timeout_s=8)
        assert max(closed) < 5.0
        # A peer that finishes the handshake and then opens no stream is closed too.
        silent = RawPeer(IRENE.key)
        # py-libp2p runs identify on every new connection (a stream): this peer does not.
        silent.host._should_identify_peer = lambda peer_id: False  # type: ignore[attr-defined]
        async with silent.host.run(listen_multiaddrs()):
            info = info_from_p2p_addr(Multiaddr(bob.multiaddrs()[0]))
            silent.host.get_peerstore().add_addrs(info.peer_id, info.addrs, 60)
            await silent.host.get_network().dial_peer(info.peer_id)
            await eventually(lambda: bob.node.silent_closed >= 1, timeout_s=5)
            network = bob.host.get_network()
            await eventually(lambda: not network.get_connections(silent.host.get_id()))


async def test_a_peer_that_opened_a_stream_keeps_its_connection(
    homes: dict[str, NodeHome],
) -> None:
    """py-libp2p 0.8.1 tags an inbound stream's direction only after it told the
    notifees: every inbound connection, however busy, was once closed as silent."""
    config = P2PConfig(gossip=False, connection_silent_ms_max=300)
    bob_inbox = Inbox()
    async with (
        running(homes["bob"], bob_inbox, config) as bob,
        running(homes["alice"], Inbox(), _QUIET) as alice,
    ):
        await alice.connect(bob.multiaddrs()[0])
        await alice.send(BOB.address, [_payload("hello")])
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 1)
        await trio.sleep(0.6)
        assert bob.node.silent_closed == 0
        assert bob.host.get_network().get_connections(alice.host.get_id())


async def test_garbage_on_a_pubsub_stream_stops_neither_the_node_nor_its_gossip(
    homes: dict[str, NodeHome], caplog: pytest.LogCaptureFixture
) -> None:
    """Six bytes on /meshsub/1.2.0 that are no RPC, or a published message whose key is
    no public key, once stopped the node (py-libp2p let the DecodeError out of the host)."""
    caplog.set_level(logging.INFO, logger="node.p2p")
    gossip = P2PConfig(announce_interval_ms=200)
    bob_inbox = Inbox()
    async with (
        running(homes["bob"], bob_inbox, gossip) as bob,
        RawPeer(IRENE.key).connected(bob) as irene,
    ):
        bad_key = rpc_pb2.Message(
            from_id=b"\x12\x20" + bytes(32),  # a sha256 peer id: the key must come along
            data=b"x",
            seqno=b"\x01",
            topicIDs=[ANNOUNCEMENT_TOPIC],
            signature=b"\x02" * 64,
            key=b"\x12\x34not a key",
        )
        rpc = rpc_pb2.RPC(publish=[bad_key]).SerializeToString()
        for garbage in (encode_varint(len(rpc)) + rpc, b"\x05\xff\xff\xff\xff\xff"):
            stream = await irene.host.new_stream(bob.host.get_id(), [PROTOCOL_ID_V12])
            await stream.write(garbage)
        messages = lambda: [r.message for r in caplog.records]  # noqa: E731
        await eventually(lambda: any("pubsub stream" in m for m in messages()))
        await eventually(lambda: any("dropped a pubsub message" in m for m in messages()))
        async with running(homes["alice"], Inbox(), gossip) as alice:
            await alice.connect(bob.multiaddrs()[0])
            await alice.send(BOB.address, [_payload("still served")])
            await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 1)
            address = bytes.fromhex(ALICE.address[2:])
            await eventually(lambda: bob.node.directory.lookup(address) is not None, timeout_s=10)


async def test_a_disconnected_peer_is_kept_away_then_served_again(
    homes: dict[str, NodeHome],
) -> None:
    bob_inbox = Inbox()
    async with (
        running(homes["bob"], bob_inbox, _QUIET) as bob,
        running(homes["alice"], Inbox(), _QUIET) as alice,
    ):
        await alice.connect(bob.multiaddrs()[0])
        await alice.send(BOB.address, [_payload("before")])
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 1)
        bob.node.disconnect(ALICE.address, 1.5)
        network = bob.host.get_network()
        await eventually(lambda: not network.get_connections(alice.host.get_id()))
        started = trio.current_time()
        await alice.send(BOB.address, [_payload("during")])
        await eventually(lambda: len(bob_inbox.ids_from(ALICE.address)) == 2, timeout_s=15)
        assert trio.current_time() - started >= 1.0
        assert bob.node.messenger.backoff_remaining(ALICE.address) == 0
    with pytest.raises(ValueError, match="backoff_s"):
        bob.node.disconnect(ALICE.address, -1)


async def test_sessions_only_after_a_valid_envelope_and_idle_ones_evicted(
    homes: dict[str, NodeHome], caplog: pytest.LogCaptureFixture
) -> None:
    options = MessengerOptions(session_idle_ms=400, frame_stall_ms_max=300)
    bob_inbox = Inbox()
    async with (
        running(homes["bob"], bob_inbox, P2PConfig(gossip=False, messenger=options)) as bob,
        RawPeer(IRENE.key).connected(bob) as irene,
    ):
        messenger = bob.node.messenger
        stream = await irene.host.new_stream(bob.host.get_id(), [MESSAGE_PROTOCOL])
        await stream.write(_frame())  # a frame of acks only: no session for that
        await trio.sleep(0.2)
        assert messenger.session_count == 0
        await stream.write(_frame(_envelope(1, sender=IRENE.address, payload=_payload("ok"))))
        await eventually(lambda: len(bob_inbox.ids_from(IRENE.address)) == 1)
        assert messenger.session_count == 1
        # Acknowledged, nothing owed: the session goes after session_idle_ms...
        await eventually(lambda: messenger.session_count == 0, timeout_s=3)
        # ...and the ids it handled stay: a replay is dropped and acknowledged again.
        await stream.write(_frame(_envelope(1, sender=IRENE.address, payload=_payload("ok"))))
        await eventually(lambda: messenger.session_count == 1)
        assert bob_inbox.ids_from(IRENE.address) == [1]
        # An unfinished frame that makes no progress is reset after frame_stall_ms_max.
        stalled = await irene.host.new_stream(bob.host.get_id(), [MESSAGE_PROTOCOL])
        await stalled.write((1000).to_bytes(4, "big") + b"\x00" * 10)
        await eventually(lambda: any("no progress" in r.message for r in caplog.records))
        assert messenger.unfinished.used == 0
