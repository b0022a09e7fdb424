"""Signed network announcements over GossipSub, and the peer directory they fill.

Each node periodically publishes a SignedAnnouncement: its address, peer id,
multiaddrs and the ledger channels it offers as an intermediary. Receivers
check the signature against the announced address, the peer id against the
same key and the pubsub originator, and keep the newest announcement per
address, so a payer can reach a node knowing only its Ethereum address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import coincurve
import trio
from google.protobuf.message import DecodeError
from libp2p.abc import IHost, INetStream, ISubscriptionAPI
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from node.core import keccak256
from node.core.constants import (
    address_bytes,
    bytes32_bytes,
    p2p_announce_interval_ms,
    p2p_announcement_age_ms_max,
    p2p_announcement_bytes_max,
    p2p_announcement_ledgers_max,
    p2p_announcement_refresh_ms_min,
    p2p_announcement_skew_ms_max,
    p2p_directory_entries_per_host_max,
    p2p_multiaddrs_per_peer_max,
    p2p_peer_id_chars_max,
    p2p_peers_max,
    signature_bytes,
)
from node.core.errors import InvalidValueError, PeerProtocolError
from node.p2p._addrs import check_multiaddr, host_of
from node.p2p._identity import (
    address_bytes_from_peer_id,
    address_bytes_from_private_key,
    address_bytes_from_public_key,
    checksum_address,
)
from node.p2p._messenger import NETWORK_ERRORS, PeerContact
from node.proto import wire_pb2

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.p2p.gossip")

ANNOUNCEMENT_TOPIC = "/scnode/announcements/1"
_SIGNING_DOMAIN = b"scnode-announcement-v1"
# GossipSub's default limit (10 msg/s per forwarding peer and topic) would drop
# announcements relayed for a network of more than a few nodes.
_GOSSIP_MESSAGES_PER_S_MAX = 100.0
_HEARTBEAT_INTERVAL_S = 1
# Between two announcements of ours: receivers' refresh interval, and a margin for their
# clocks and the relays on the way.
_ANNOUNCE_SPACING_S = p2p_announcement_refresh_ms_min / 1000 * 1.25


@dataclass(frozen=True)
class DirectoryEntry:
    """What the newest valid announcement of a node said."""

    address: str
    peer_id: str
    multiaddrs: tuple[str, ...]
    ledgers: tuple[wire_pb2.LedgerOffer, ...]
    announced_ms: int


def announcement_digest(announcement_bytes: bytes) -> bytes:
    """The 32-byte digest a node signs for an announcement."""
    return keccak256(_SIGNING_DOMAIN + announcement_bytes)


def sign_announcement(announcement: wire_pb2.Announcement, private_key: bytes) -> bytes:
    """A serialised SignedAnnouncement by the node key."""
    assert announcement.address == address_bytes_from_private_key(private_key)
    body = announcement.SerializeToString()
    signature = coincurve.PrivateKey(private_key).sign_recoverable(
        announcement_digest(body), hasher=None
    )
    signature = signature[:64] + bytes([signature[64] + 27])
    return wire_pb2.SignedAnnouncement(announcement=body, signature=signature).SerializeToString()


def _recover_signer(body: bytes, signature: bytes) -> bytes:
    if len(signature) != signature_bytes or signature[64] not in (27, 28):
        raise PeerProtocolError(f"announcement signature: {len(signature)} bytes, bad v")
    raw = signature[:64] + bytes([signature[64] - 27])
    try:
        public_key = coincurve.PublicKey.from_signature_and_message(
            raw, announcement_digest(body), hasher=None
        )
    except ValueError as error:
        raise PeerProtocolError(f"announcement signature recovers no key: {error}") from None
    return address_bytes_from_public_key(public_key)


def _check_ledgers(ledgers: Sequence[wire_pb2.LedgerOffer], announcer: bytes) -> None:
    if len(ledgers) > p2p_announcement_ledgers_max:
        raise PeerProtocolError(
            f"announcement lists {len(ledgers)} ledgers (max {p2p_announcement_ledgers_max})"
        )
    if len({offer.channel_id for offer in ledgers}) != len(ledgers):
        raise PeerProtocolError("announcement lists a ledger twice")
    for index, offer in enumerate(ledgers):
        if offer.counterparty == announcer:
            raise PeerProtocolError(f"ledgers[{index}]: a ledger with itself")
        if len(offer.channel_id) != bytes32_bytes:
            raise PeerProtocolError(f"ledgers[{index}].channel_id: not 32 bytes")
        if len(offer.counterparty) != address_bytes or len(offer.asset) != address_bytes:
            raise PeerProtocolError(f"ledgers[{index}]: counterparty/asset not 20 bytes")
        if len(offer.capacity) > bytes32_bytes:
            raise PeerProtocolError(f"ledgers[{index}].capacity: wider than uint256")


def verify_announcement(data: bytes, *, origin_peer_id: str, now_ms: int) -> DirectoryEntry:
    """Check a gossiped SignedAnnouncement and return what it says.

    Args:
        data: the pubsub message data.
        origin_peer_id: the pubsub originator (verified by pubsub's signing).
        now_ms: wall clock, to refuse stale and future announcements.

    Raises:
        PeerProtocolError: malformed, badly signed, stale, or bound to another key.
    """
    if len(data) > p2p_announcement_bytes_max:
        raise PeerProtocolError(f"announcement of {len(data)} bytes exceeds the bound")
    try:
        signed = wire_pb2.SignedAnnouncement.FromString(data)
        announcement = wire_pb2.Announcement.FromString(signed.announcement)
    except DecodeError as error:
        raise PeerProtocolError(f"malformed announcement: {error}") from None
    # Cheap checks first: a signature recovery costs ~70 us.
    if len(announcement.peer_id) > p2p_peer_id_chars_max:
        raise PeerProtocolError("announcement: peer id longer than any peer id")
    if len(announcement.multiaddrs) > p2p_multiaddrs_per_peer_max:
        raise PeerProtocolError(f"announcement lists {len(announcement.multiaddrs)} multiaddrs")
    if not now_ms - p2p_announcement_age_ms_max <= announcement.time_ms:
        raise PeerProtocolError(f"announcement from {announcement.time_ms} ms is stale")
    if announcement.time_ms > now_ms + p2p_announcement_skew_ms_max:
        raise PeerProtocolError(f"announcement time {announcement.time_ms} is in the future")
    if _recover_signer(signed.announcement, signed.signature) != announcement.address:
        raise PeerProtocolError("announcement: signature is not by the announced address")
    if announcement.peer_id != origin_peer_id:
        raise PeerProtocolError(
            f"announcement for {announcement.peer_id} published by {origin_peer_id}"
        )
    try:
        bound = address_bytes_from_peer_id(announcement.peer_id)
    except InvalidValueError as error:
        raise PeerProtocolError(f"announcement: {error}") from None
    if bound != announcement.address:
        raise PeerProtocolError("announcement: peer id and address are different keys")
    multiaddrs: dict[str, None] = {}
    for index, text in enumerate(announcement.multiaddrs):
        try:
            multiaddrs[check_multiaddr(text, peer_id=announcement.peer_id)] = None
        except InvalidValueError as error:
            raise PeerProtocolError(f"announcement multiaddrs[{index}]: {error}") from None
    _check_ledgers(announcement.ledgers, announcement.address)
    return DirectoryEntry(
        address=checksum_address(announcement.address),
        peer_id=announcement.peer_id,
        multiaddrs=tuple(multiaddrs),
        ledgers=tuple(announcement.ledgers),
        announced_ms=announcement.time_ms,
    )


Protected = Callable[[], Collection[bytes]]


class PeerDirectory:
    """The newest announcement of every node heard of, by address, within bounds.

    A sybil can make identities for free, so the directory holds at most
    ``capacity`` nodes, at most ``per_host_max`` of them naming one host in their
    multiaddrs, and takes a node's refresh at most once per ``refresh_ms_min``.
    When full, a new node pushes out a node gone silent (not refreshed for
    p2p_announcement_age_ms_max), else the node first seen most recently, never one
    that ``protected`` names (the peers we have channels with or dial): a flood of
    new identities pushes out its own, and a node that was here before it stays.

    Args:
        capacity: nodes held at most.
        per_host_max: nodes whose multiaddrs name one host, at most.
        refresh_ms_min: the least time between two updates of one node.
        protected: the addresses never pushed out (asked only when full).
    """

    def __init__(
        self,
        *,
        capacity: int = p2p_peers_max,
        per_host_max: int = p2p_directory_entries_per_host_max,
        refresh_ms_min: int = p2p_announcement_refresh_ms_min,
        protected: Protected = frozenset,
    ) -> None:
        assert capacity > 0
        assert per_host_max > 0
        self._capacity = capacity
        self._per_host_max = per_host_max
        self._refresh_ms_min = refresh_ms_min
        self._protected = protected
        self._entries: dict[bytes, DirectoryEntry] = {}
        self._refreshed_ms: dict[bytes, int] = {}  # our clock when each was taken
        self._first_seen_ms: dict[bytes, int] = {}
        self._by_host: dict[str, set[bytes]] = {}
        self.refused = 0  # announcements refused by these bounds

    def update(self, entry: DirectoryEntry, now_ms: int | None = None) -> bool:
        """Keep an entry unless a newer one is held or a bound refuses it.

        Args:
            entry: a verified announcement.
            now_ms: our clock (default: the announcement's time).

        Returns:
            Whether it was kept.
        """
        now = entry.announced_ms if now_ms is None else now_ms
        key = bytes.fromhex(entry.address[2:])
        old = self._entries.get(key)
        if old is not None and old.announced_ms >= entry.announced_ms:
            return False
        if old is not None and now - self._refreshed_ms[key] < self._refresh_ms_min:
            self.refused += 1  # an honest node announces again on each new connection
            return False
        crowded = self._crowded_host(key, entry)
        if crowded is not None:
            return self._refuse(entry, f"{self._per_host_max} nodes name host {crowded}")
        if old is None and len(self._entries) >= self._capacity and not self._make_room(now):
            return self._refuse(entry, "the directory is full of protected nodes")
        first_seen_ms = self._first_seen_ms.get(key, now)
        self._forget(key)
        self._entries[key] = entry
        self._refreshed_ms[key] = now
        self._first_seen_ms[key] = first_seen_ms
        for host in {host_of(text) for text in entry.multiaddrs}:
            self._by_host.setdefault(host, set()).add(key)
        return True

    def _refuse(self, entry: DirectoryEntry, why: str) -> bool:
        self.refused += 1
        logger.info("directory: not taking %s: %s", entry.address, why)
        return False

    def _crowded_host(self, key: bytes, entry: DirectoryEntry) -> str | None:
        for host in {host_of(text) for text in entry.multiaddrs}:
            others = self._by_host.get(host, set()) - {key}
            if len(others) >= self._per_host_max:
                return host
        return None

    def _make_room(self, now_ms: int) -> bool:
        protected = set(self._protected())
        candidates = [key for key in self._entries if key not in protected]
        if not candidates:
            return False
        silent = [
            key
            for key in candidates
            if now_ms - self._refreshed_ms[key] > p2p_announcement_age_ms_max
        ]
        if silent:
            self._forget(min(silent, key=self._refreshed_ms.__getitem__))
        else:
            self._forget(max(candidates, key=self._first_seen_ms.__getitem__))
        return True

    def _forget(self, key: bytes) -> None:
        old = self._entries.pop(key, None)
        self._refreshed_ms.pop(key, None)
        self._first_seen_ms.pop(key, None)
        if old is None:
            return
        for host in {host_of(text) for text in old.multiaddrs}:
            holders = self._by_host.get(host)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_host[host]

    def lookup(self, address: bytes) -> DirectoryEntry | None:
        return self._entries.get(address)

    def contact(self, address: bytes) -> PeerContact | None:
        """ContactResolver: the announced peer id and multiaddrs of an address."""
        entry = self._entries.get(address)
        return None if entry is None else PeerContact(entry.peer_id, entry.multiaddrs)

    def entries(self) -> list[DirectoryEntry]:
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def routable_offers(self) -> list[tuple[str, list[wire_pb2.LedgerOffer]]]:
        """Each node's ledger offers that the other end announces too.

        A route may use a ledger only when both of its ends announce it: the same
        channel id and asset, each naming the other as counterparty. One node alone
        cannot invent a ledger (and so a route) with an honest node. Capacities are
        what each end says it can forward; checking them against the chain is the
        caller's.
        """
        announced: set[tuple[bytes, bytes, bytes, bytes]] = set()
        for key, entry in self._entries.items():
            for offer in entry.ledgers:
                announced.add((key, offer.counterparty, offer.channel_id, offer.asset))
        routable: list[tuple[str, list[wire_pb2.LedgerOffer]]] = []
        for key, entry in self._entries.items():
            mirrored = [
                offer
                for offer in entry.ledgers
                if (offer.counterparty, key, offer.channel_id, offer.asset) in announced
            ]
            if mirrored:
                routable.append((entry.address, mirrored))
        return routable


class _GuardedPubsub(Pubsub):
    """Pubsub whose handling of a peer's stream and messages no peer's bytes can break
    out of.

    py-libp2p 0.8.1 lets a DecodeError out of both: six bytes of garbage on
    /meshsub/1.2.0 (the stream handler), or a published message whose key is no public
    key (``push_msg``, a task of the pubsub service), stopped the service and the host,
    and the node with them. Whatever a peer's stream raises now resets it and drops the
    peer from pubsub, as py-libp2p does for the errors it expects; a message that
    raises is dropped.
    """

    async def stream_handler(self, stream: INetStream) -> None:
        try:
            await super().stream_handler(stream)
        except Exception as error:  # a peer's bytes, whatever py-libp2p raises on them
            peer_id = stream.muxed_conn.peer_id
            logger.info("pubsub stream of %s reset: %r", peer_id, error)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                try:
                    await stream.reset()
                except NETWORK_ERRORS as reset_error:
                    logger.debug("reset of a broken pubsub stream failed: %r", reset_error)
            self._handle_dead_peer(peer_id)

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        try:
            await super().push_msg(msg_forwarder, msg)
        except Exception as error:  # a peer's message, whatever py-libp2p raises on it
            logger.info("dropped a pubsub message forwarded by %s: %r", msg_forwarder, error)


LedgerOffers = Callable[[], Sequence[wire_pb2.LedgerOffer]]
EntryListener = Callable[[DirectoryEntry], None]


class Gossip:
    """Runs GossipSub, publishes this node's announcements, and fills a directory."""

    def __init__(
        self,
        *,
        host: IHost,
        private_key: bytes,
        directory: PeerDirectory,
        multiaddrs: Callable[[], Sequence[str]],
        ledgers: LedgerOffers = tuple,
        on_entry: EntryListener | None = None,
        announce_interval_ms: int = p2p_announce_interval_ms,
    ) -> None:
        self._host = host
        self._private_key = private_key
        self._address = address_bytes_from_private_key(private_key)
        self.directory = directory
        self._multiaddrs = multiaddrs
        self._ledgers = ledgers
        self._listeners: list[EntryListener] = [] if on_entry is None else [on_entry]
        self._announce_interval_s = announce_interval_ms / 1000
        self._router = GossipSub(
            protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=_HEARTBEAT_INTERVAL_S,
            max_messages_per_topic_per_second=_GOSSIP_MESSAGES_PER_S_MAX,
        )
        self.pubsub: Pubsub = _GuardedPubsub(host, self._router)
        self._announce_now = trio.Event()

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve GossipSub; announce now and then every interval."""
        async with (
            background_trio_service(self.pubsub),
            background_trio_service(self._router),
            trio.open_nursery() as nursery,
        ):
            await self.pubsub.wait_until_ready()
            subscription = await self.pubsub.subscribe(ANNOUNCEMENT_TOPIC)
            nursery.start_soon(self._receive_loop, subscription)
            nursery.start_soon(self._announce_loop)
            task_status.started()
            await trio.sleep_forever()

    def add_entry_listener(self, listener: EntryListener) -> None:
        """Also call ``listener`` with every new directory entry."""
        self._listeners.append(listener)

    def announce_soon(self) -> None:
        """Publish an announcement now (e.g. after a new peer connected)."""
        self._announce_now.set()

    def announcement(self, now_ms: int) -> bytes:
        """This node's current signed announcement."""
        announcement = wire_pb2.Announcement(
            address=self._address,
            peer_id=self._host.get_id().to_base58(),
            multiaddrs=list(self._multiaddrs())[:p2p_multiaddrs_per_peer_max],
            ledgers=list(self._ledgers())[:p2p_announcement_ledgers_max],
            time_ms=now_ms,
        )
        return sign_announcement(announcement, self._private_key)

    async def _announce_loop(self) -> None:
        while True:
            data = self.announcement(int(time.time() * 1000))
            try:
                await self.pubsub.publish(ANNOUNCEMENT_TOPIC, data)
            except (BaseLibp2pError, ValueError) as error:
                logger.warning("announcement not published: %r", error)
            # Receivers take one announcement per node per refresh interval: those asked
            # for meanwhile (each new connection asks) go out as one, after it. Sent
            # sooner, every node of the network would relay them to be refused.
            spacing_s = min(_ANNOUNCE_SPACING_S, self._announce_interval_s)
            await trio.sleep(spacing_s)
            with trio.move_on_after(self._announce_interval_s - spacing_s):
                await self._announce_now.wait()
            self._announce_now = trio.Event()

    async def _receive_loop(self, subscription: ISubscriptionAPI) -> None:
        own_peer_id = self._host.get_id()
        while True:
            message = await subscription.get()
            origin = ID(message.from_id)
            if origin == own_peer_id:
                continue
            try:
                entry = verify_announcement(
                    message.data,
                    origin_peer_id=origin.to_base58(),
                    now_ms=int(time.time() * 1000),
                )
            except PeerProtocolError as error:
                logger.warning("rejected announcement from %s: %s", origin, error)
                continue
            if self.directory.update(entry, int(time.time() * 1000)):
                logger.debug("directory: %s at %s", entry.address, entry.multiaddrs)
                for listener in self._listeners:
                    listener(entry)
