"""The p2p service of a node: host, peer store, messaging, gossip and redial."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.rcmgr import Direction
from multiaddr import Multiaddr

from node.core.constants import (
    p2p_announce_interval_ms,
    p2p_connection_silent_ms_max,
    p2p_redial_backoff_ms_max,
    p2p_redial_backoff_ms_min,
)
from node.core.errors import InvalidValueError
from node.p2p._gossip import DirectoryEntry, Gossip, LedgerOffers, PeerDirectory
from node.p2p._host import (
    allow_redial,
    listen_multiaddrs,
    make_host,
    own_multiaddrs,
    strip_peer_suffix,
)
from node.p2p._identity import (
    address_bytes_from_peer_id,
    address_bytes_from_private_key,
    checksum_address,
    parse_address,
)
from node.p2p._messenger import (
    NETWORK_ERRORS,
    Delivery,
    Messenger,
    MessengerOptions,
    PeerContact,
)
from node.p2p._peerstore import PeerStore, parse_peer_multiaddr

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.p2p")

_SAVE_INTERVAL_S = 1.0
_REDIAL_TICK_S = 0.2
_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class P2PConfig:
    """Where to listen and how often to announce."""

    listen_host: str = "127.0.0.1"
    port: int = 0
    announce_interval_ms: int = p2p_announce_interval_ms
    gossip: bool = True
    connection_silent_ms_max: int = p2p_connection_silent_ms_max
    messenger: MessengerOptions = field(default_factory=MessengerOptions)


class _Resolver:
    """The peer store first (the user's word), then the gossip directory."""

    def __init__(self, store: PeerStore, directory: PeerDirectory) -> None:
        self._store = store
        self._directory = directory

    def contact(self, address: bytes) -> PeerContact | None:
        stored = self._store.contact(address)
        if stored is not None and stored.multiaddrs:
            return stored
        return self._directory.contact(address) or stored


class _ConnectionWatcher(INotifee):
    """Keeps the peer store's connected/last-seen columns current, and closes connections
    of peers the owner disconnected and inbound ones that open no stream in time."""

    def __init__(self, node: P2PNode) -> None:
        self._node = node

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        # Only the peer's streams count: ours (identify) say nothing of a silent peer.
        if _opened_by_peer(stream):
            self._node._streams_opened.add(id(stream.muxed_conn))

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._node._on_connection(conn.muxed_conn.peer_id, connected=True)
        self._node._watch_connection(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._node._streams_opened.discard(id(conn.muxed_conn))
        self._node._on_connection(conn.muxed_conn.peer_id, connected=False)

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None


def _opened_by_peer(stream: INetStream) -> bool:
    """Whether the peer opened ``stream``. py-libp2p 0.8.1 tags an inbound stream's
    direction only after it told the notifees, so the muxer is asked too: the side that
    opened a Yamux stream is its initiator."""
    if getattr(stream, "_direction", None) is Direction.INBOUND:
        return True
    return getattr(getattr(stream, "muxed_stream", None), "is_initiator", True) is False


class P2PNode:
    """One node's networking, run as a trio service.

    Args:
        private_key: the node key (identity, message sender, announcement signer).
        state_dir: HOME/p2p, where the peer store lives.
        config: listen address and announcement period.
        ledgers: the ledger channels this node offers as an intermediary.
    """

    def __init__(
        self,
        *,
        private_key: bytes,
        state_dir: Path,
        config: P2PConfig | None = None,
        ledgers: LedgerOffers = tuple,
    ) -> None:
        self.config = config or P2PConfig()
        self.address = checksum_address(address_bytes_from_private_key(private_key))
        self.host = make_host(private_key)
        self.peer_id = self.host.get_id().to_base58()
        self.peer_store = PeerStore.load_or_start_empty(state_dir)
        self.peer_store.mark_all_disconnected()
        self._ledgers = ledgers
        self.directory = PeerDirectory(protected=self._protected_addresses)
        self.messenger = Messenger(
            host=self.host,
            address=address_bytes_from_private_key(private_key),
            resolver=_Resolver(self.peer_store, self.directory),
            options=self.config.messenger,
        )
        # Pubsub hooks into the host when built, and its connection hook blocks
        # until the pubsub service runs: build it only when it will run.
        self.gossip: Gossip | None = None
        if self.config.gossip:
            self.gossip = Gossip(
                host=self.host,
                private_key=private_key,
                directory=self.directory,
                multiaddrs=self.multiaddrs,
                ledgers=ledgers,
                on_entry=self._on_directory_entry,
                announce_interval_ms=self.config.announce_interval_ms,
            )
        self._dirty = trio.Event()
        self._redial_at: dict[str, tuple[float, float]] = {}  # peer id -> (when, backoff)
        self._nursery: trio.Nursery | None = None
        self._streams_opened: set[int] = set()  # ids of muxed connections with a stream
        self._watched: set[int] = set()  # inbound connections waiting for their first stream
        self.silent_closed = 0  # inbound connections closed for opening no stream

    @property
    def deliveries(self) -> trio.MemoryReceiveChannel[Delivery]:
        """Batches of envelopes from peers, each envelope delivered once."""
        return self.messenger.deliveries

    def restore(
        self,
        outboxes: Mapping[bytes, Mapping[int, bytes]],
        seen: Mapping[bytes, tuple[int, Iterable[int]]],
    ) -> None:
        """See ``Messenger.restore``."""
        self.messenger.restore(outboxes, seen)

    def transmit(self, recipient: str | bytes, messages: Sequence[tuple[int, bytes]]) -> None:
        """See ``Messenger.transmit``."""
        self.messenger.transmit(recipient, messages)

    def acknowledge(self, sender: str | bytes, message_ids: Sequence[int]) -> None:
        """See ``Messenger.acknowledge``."""
        self.messenger.acknowledge(sender, message_ids)

    def release(self, sender: str | bytes, message_ids: Sequence[int]) -> None:
        """See ``Messenger.release``."""
        self.messenger.release(sender, message_ids)

    def disconnect(self, peer: str | bytes, backoff_s: float) -> None:
        """Disconnect a peer and keep it away for ``backoff_s`` seconds (a penalty).

        Its message streams are reset and refused, its connection is closed (and
        closed again if it reconnects), and it is not dialled meanwhile. What we owe
        it stays: unacknowledged messages and acks go out once the backoff is over.
        The engine calls this for a peer over its outbox budget.

        Raises:
            InvalidValueError: not an address, or ``backoff_s`` out of range.
        """
        self.messenger.disconnect(peer, backoff_s)
        record = self.peer_store.by_address(peer)
        peer_id = None if record is None else ID.from_base58(record.peer_id)
        for conn in self.host.get_network().get_connections():
            remote = conn.muxed_conn.peer_id
            if peer_id is None and self._address_of(remote) == parse_address(peer):
                peer_id = remote
        if peer_id is not None and self._nursery is not None:
            self._nursery.start_soon(self._close_peer, peer_id)
        logger.info("disconnected %s for %.1f s", checksum_address(parse_address(peer)), backoff_s)

    def penalise(self, peer: str | bytes, backoff_s: float) -> None:
        """The same as ``disconnect``."""
        self.disconnect(peer, backoff_s)

    def multiaddrs(self) -> list[str]:
        """This node's dialable multiaddrs (valid once ``run`` has started)."""
        return own_multiaddrs(self.host)

    async def run(self, *, task_status: TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, serve and redial until cancelled; ``started()`` gets the multiaddrs."""
        listen = listen_multiaddrs(self.config.listen_host, self.config.port)
        async with self.host.run(listen), trio.open_nursery() as nursery:
            self._nursery = nursery
            self.host.get_network().register_notifee(_ConnectionWatcher(self))
            await nursery.start(self.messenger.run)
            if self.gossip is not None:
                await nursery.start(self.gossip.run)
            nursery.start_soon(self._redial_loop)
            nursery.start_soon(self._save_loop)
            task_status.started(self.multiaddrs())
            try:
                await trio.sleep_forever()
            finally:
                self.peer_store.merge_from_disk()
                self.peer_store.mark_all_disconnected()
                self.peer_store.save()

    async def connect(self, multiaddr: str) -> str:
        """Add a peer by multiaddr to the store (redialled on start) and dial it.

        Returns:
            The peer's EIP-55 address.

        Raises:
            InvalidValueError: not a /…/p2p/<secp256k1 peer id> multiaddr.
        """
        text, peer_id = parse_peer_multiaddr(multiaddr)
        record = self.peer_store.add(peer_id, [text], dial=True)
        self._dirty.set()
        await self._dial(peer_id, record.multiaddrs)
        return record.address

    def _protected_addresses(self) -> set[bytes]:
        """Directory entries never pushed out: our ledgers' counterparties, the peers
        we dial, the peers connected now."""
        protected = {offer.counterparty for offer in self._ledgers()}
        protected.update(parse_address(r.address) for r in self.peer_store.records() if r.dial)
        for conn in self.host.get_network().get_connections():
            address = self._address_of(conn.muxed_conn.peer_id)
            if address is not None:
                protected.add(address)
        return protected

    @staticmethod
    def _address_of(peer_id: ID) -> bytes | None:
        try:
            return address_bytes_from_peer_id(peer_id)
        except InvalidValueError:
            return None

    def _watch_connection(self, conn: INetConn) -> None:
        """A new connection: close it if its peer is backed off; watch an inbound one
        until it opens a stream."""
        if self._nursery is None:
            return
        address = self._address_of(conn.muxed_conn.peer_id)
        if address is not None and self.messenger.backoff_remaining(address) > 0:
            self._nursery.start_soon(_close_conn, conn, "peer disconnected for now")
            return
        watched = id(conn.muxed_conn)
        if getattr(conn, "direction", None) is Direction.INBOUND and watched not in self._watched:
            self._watched.add(watched)
            self._nursery.start_soon(self._close_if_silent, conn)

    async def _close_if_silent(self, conn: INetConn) -> None:
        await trio.sleep(self.config.connection_silent_ms_max / 1000)
        self._watched.discard(id(conn.muxed_conn))
        if conn.is_closed or id(conn.muxed_conn) in self._streams_opened:
            return
        self.silent_closed += 1
        await _close_conn(conn, "no stream opened in time")

    async def _close_peer(self, peer_id: ID) -> None:
        with trio.move_on_after(_CONNECT_TIMEOUT_S):
            try:
                await self.host.disconnect(peer_id)
            except Exception as error:  # closing a broken connection: nothing to do
                logger.debug("disconnect of %s failed: %r", peer_id, error)

    def _on_connection(self, peer_id: ID, *, connected: bool) -> None:
        text = peer_id.to_base58()
        try:
            address_bytes_from_peer_id(peer_id)
        except InvalidValueError:
            return
        if self.peer_store.get(text) is None:
            self.peer_store.add(text, [], dial=False)
        self.peer_store.set_connected(text, connected, int(time.time() * 1000))
        self._dirty.set()
        if connected:
            self._redial_at.pop(text, None)
            if self.gossip is not None:
                self.gossip.announce_soon()

    def _on_directory_entry(self, entry: DirectoryEntry) -> None:
        self.peer_store.add(entry.peer_id, entry.multiaddrs, dial=False)
        self._dirty.set()

    async def _dial(self, peer_id: str, multiaddrs: Sequence[str]) -> bool:
        """Dial a peer; every failure is logged and answered False, never raised."""
        try:
            info = PeerInfo(ID.from_base58(peer_id), strip_peer_suffix(multiaddrs))
            if not info.addrs:
                logger.info("dial %s: no address that checks", peer_id)
                return False
            allow_redial(self.host, info.peer_id)
            with trio.fail_after(_CONNECT_TIMEOUT_S):
                await self.host.connect(info)
        except NETWORK_ERRORS as error:
            logger.info("dial %s failed: %r", peer_id, error)
            return False
        except Exception:  # a dial must never stop the node, whatever py-libp2p raises
            logger.exception("dial %s failed", peer_id)
            return False
        return True

    async def _redial_loop(self) -> None:
        """Keep every ``dial`` peer connected, backing off per peer while it is down."""
        network = self.host.get_network()
        while True:
            now = trio.current_time()
            for record in self.peer_store.records():
                if not record.dial or not record.multiaddrs or record.peer_id == self.peer_id:
                    continue
                if self.messenger.backoff_remaining(record.address) > 0:
                    continue
                if network.get_connections(ID.from_base58(record.peer_id)):
                    continue
                when, backoff = self._redial_at.get(
                    record.peer_id, (now, p2p_redial_backoff_ms_min / 1000)
                )
                if when > now:
                    continue
                if not await self._dial(record.peer_id, record.multiaddrs):
                    self._redial_at[record.peer_id] = (
                        trio.current_time() + backoff,
                        min(backoff * 2, p2p_redial_backoff_ms_max / 1000),
                    )
            await trio.sleep(_REDIAL_TICK_S)

    async def _save_loop(self) -> None:
        """Save the store when it changed; take in peers added by ``scnode connect``."""
        written_ns = -1
        while True:
            with trio.move_on_after(_SAVE_INTERVAL_S):
                await self._dirty.wait()
            # A stat waits behind the log's fsyncs on a busy disk: not in the loop's thread.
            if await trio.to_thread.run_sync(self.peer_store.modified_ns) != written_ns:
                for record in self.peer_store.merge_from_disk():
                    logger.info(
                        "peer store: %s added from outside (%s)", record.peer_id, record.address
                    )
                    self._dirty.set()
            if self._dirty.is_set():
                self._dirty = trio.Event()
                await trio.to_thread.run_sync(self.peer_store.save)
                written_ns = await trio.to_thread.run_sync(self.peer_store.modified_ns)
            await trio.sleep(_SAVE_INTERVAL_S)


async def _close_conn(conn: INetConn, why: str) -> None:
    logger.info("closing the connection of %s: %s", conn.muxed_conn.peer_id, why)
    with trio.move_on_after(_CONNECT_TIMEOUT_S):
        try:
            await conn.close()
        except Exception as error:  # closing a broken connection: nothing to do
            logger.debug("closing a connection failed: %r", error)


def startup_banner(node: P2PNode) -> str:
    """Lines a node prints at start: its address, peer id and multiaddrs."""
    lines = [f"scnode p2p: address {node.address}, peer id {node.peer_id}"]
    lines.extend(f"  listening on {addr}" for addr in node.multiaddrs())
    return "\n".join(lines)
