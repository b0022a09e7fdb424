"""The persistent peer store: HOME/p2p/peers.json.

It remembers every peer this node knows (added by the user, met on a
connection, or learned from gossip) with its multiaddrs and when it was last
seen. Peers marked ``dial`` are redialled when the node starts.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from node.core.constants import (
    p2p_multiaddrs_per_peer_max,
    p2p_peer_id_chars_max,
    p2p_peers_max,
)
from node.core.errors import InvalidValueError
from node.p2p._addrs import check_multiaddr, check_multiaddrs
from node.p2p._identity import address_bytes_from_peer_id, checksum_address, parse_address
from node.p2p._messenger import PeerContact

logger = logging.getLogger("node.p2p.peers")

PEER_STORE_FILE = "peers.json"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class PeerRecord:
    """One known peer."""

    peer_id: str
    address: str  # EIP-55, derived from peer_id
    multiaddrs: tuple[str, ...]
    dial: bool  # redial on start
    connected: bool = False
    last_seen_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "multiaddrs": list(self.multiaddrs),
            "dial": self.dial,
            "connected": self.connected,
            "last_seen_ms": self.last_seen_ms,
        }


def parse_peer_multiaddr(text: str) -> tuple[str, str]:
    """Split /ip4/…/tcp/…/p2p/<id> into (the whole address, the peer id).

    Raises:
        InvalidValueError: not a dialable multiaddr (``check_multiaddr``), no /p2p/
            part, or not a secp256k1 peer.
    """
    canonical = check_multiaddr(text)
    peer_id_text = canonical.rpartition("/p2p/")[2]
    address_bytes_from_peer_id(peer_id_text)
    return canonical, peer_id_text


def _record_from_json(item: Any, source: Path) -> PeerRecord:
    """One stored peer; its multiaddrs that do not check are dropped with a warning.

    Raises:
        InvalidValueError: the entry is not a peer (the caller drops it).
    """
    if not isinstance(item, dict):
        raise InvalidValueError(str(source), "each peer must be an object")
    try:
        peer_id = item["peer_id"]
        if not isinstance(peer_id, str) or len(peer_id) > p2p_peer_id_chars_max:
            raise InvalidValueError("peer_id", "not a peer id")
        stored = item["multiaddrs"]
        if not isinstance(stored, list):
            raise InvalidValueError("multiaddrs", "must be a list")
        multiaddrs, refused = check_multiaddrs(
            stored, peer_id=peer_id, bound=p2p_multiaddrs_per_peer_max
        )
        for reason in refused:
            logger.warning("peer store %s: dropped an address of %s: %s", source, peer_id, reason)
        last_seen_ms = item.get("last_seen_ms", 0)
        if type(last_seen_ms) is not int or last_seen_ms < 0:
            raise InvalidValueError("last_seen_ms", "not a non-negative integer")
        record = PeerRecord(
            peer_id=peer_id,
            address=checksum_address(address_bytes_from_peer_id(peer_id)),
            multiaddrs=tuple(multiaddrs),
            dial=item.get("dial", False) is True,
            connected=item.get("connected", False) is True,
            last_seen_ms=last_seen_ms,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidValueError(str(source), f"bad peer entry {str(item)[:200]}: {error}") from None
    return record


class PeerStore:
    """Known peers by peer id, saved atomically as JSON."""

    def __init__(self, path: Path, records: Iterable[PeerRecord] = ()) -> None:
        self.path = path
        self._records: dict[str, PeerRecord] = {record.peer_id: record for record in records}
        self._by_address: dict[bytes, str] = {
            parse_address(record.address): record.peer_id for record in self._records.values()
        }

    @classmethod
    def load(cls, directory: Path) -> PeerStore:
        """Load DIR/peers.json (an absent file is an empty store).

        Raises:
            InvalidValueError: the file is not a peer store; names the path.
        """
        path = directory / PEER_STORE_FILE
        if not path.exists():
            return cls(path)
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InvalidValueError(str(path), f"unreadable peer store: {error}") from None
        if not isinstance(document, dict) or document.get("version") != _FORMAT_VERSION:
            raise InvalidValueError(str(path), f"expected {{'version': {_FORMAT_VERSION}, …}}")
        peers = document.get("peers")
        if not isinstance(peers, list):
            raise InvalidValueError(str(path), "'peers' must be a list")
        records: list[PeerRecord] = []
        for item in peers[: 2 * p2p_peers_max]:
            try:
                records.append(_record_from_json(item, path))
            except InvalidValueError as error:
                logger.warning("peer store: dropped an entry: %s", error)
        return cls(path, records)

    @classmethod
    def load_or_start_empty(cls, directory: Path) -> PeerStore:
        """``load`` for the running node: an unreadable file never stops it.

        The file is kept beside as ``peers.json.corrupt`` for the user, and the node
        starts with no known peers (it learns them again from gossip and ``connect``).
        """
        try:
            return cls.load(directory)
        except InvalidValueError as error:
            path = directory / PEER_STORE_FILE
            kept = path.with_name(PEER_STORE_FILE + ".corrupt")
            logger.error("peer store unreadable (%s); kept as %s, starting empty", error, kept)
            try:
                os.replace(path, kept)
            except OSError as move_error:
                logger.error("could not keep %s aside: %r", path, move_error)
            return cls(path)

    def merge_from_disk(self) -> list[PeerRecord]:
        """Take in peers another process (``scnode connect``) added to the file.

        Returns:
            The records that are new here or newly marked ``dial``.
        """
        try:
            on_disk = PeerStore.load(self.path.parent)
        except InvalidValueError:
            return []
        changed: list[PeerRecord] = []
        for record in on_disk.records():
            mine = self._records.get(record.peer_id)
            if mine is None or (record.dial and not mine.dial):
                changed.append(self.add(record.peer_id, record.multiaddrs, dial=record.dial))
        return changed

    def modified_ns(self) -> int:
        """The file's modification time, 0 if it does not exist."""
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def save(self) -> None:
        """Write the store atomically (a temporary file of its own, fsync, rename).

        Saves may run at once (a save in a worker thread outlives the task that
        started it, and the node saves again when it stops): each writes its own
        temporary file, so the file on disk is always one whole document.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "version": _FORMAT_VERSION,
            "peers": [record.to_json() for record in self.records()],
        }
        descriptor, name = tempfile.mkstemp(
            prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(descriptor, "w") as handle:
                json.dump(document, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(name, self.path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def records(self) -> list[PeerRecord]:
        """Every known peer, most recently seen first."""
        return sorted(self._records.values(), key=lambda record: -record.last_seen_ms)

    def get(self, peer_id: str) -> PeerRecord | None:
        return self._records.get(peer_id)

    def by_address(self, address: str | bytes) -> PeerRecord | None:
        peer_id = self._by_address.get(parse_address(address))
        return None if peer_id is None else self._records[peer_id]

    def contact(self, address: bytes) -> PeerContact | None:
        """The contact of an address, if the store knows it (ContactResolver)."""
        record = self.by_address(address)
        if record is None:
            return None
        return PeerContact(record.peer_id, record.multiaddrs)

    def add(self, peer_id: str, multiaddrs: Iterable[str], *, dial: bool) -> PeerRecord:
        """Add or update a peer; new multiaddrs go first, ``dial`` is sticky.

        Multiaddrs are checked (``check_multiaddr``, the /p2p/ part added when
        missing); those that do not check are dropped with a warning.

        Raises:
            InvalidValueError: the peer id is not a secp256k1 peer id.
        """
        if len(peer_id) > p2p_peer_id_chars_max:
            raise InvalidValueError("peer_id", "longer than a peer id")
        address = address_bytes_from_peer_id(peer_id)
        old = self._records.get(peer_id)
        checked, refused = check_multiaddrs(
            multiaddrs, peer_id=peer_id, bound=p2p_multiaddrs_per_peer_max
        )
        for reason in refused:
            logger.warning("peer store: dropped an address of %s: %s", peer_id, reason)
        fresh = tuple(checked)
        if old is None:
            record = PeerRecord(peer_id, checksum_address(address), (), dial)
        else:
            record = replace(old, dial=old.dial or dial)
            fresh = tuple(dict.fromkeys((*fresh, *old.multiaddrs)))
        record = replace(record, multiaddrs=fresh[:p2p_multiaddrs_per_peer_max])
        self._records[peer_id] = record
        self._by_address[address] = peer_id
        self._evict()
        return record

    def set_connected(self, peer_id: str, connected: bool, now_ms: int) -> None:
        """Record a connection or disconnection of a known peer."""
        old = self._records.get(peer_id)
        if old is not None:
            self._records[peer_id] = replace(old, connected=connected, last_seen_ms=now_ms)

    def mark_all_disconnected(self) -> None:
        """On start and stop: no connection survives a restart."""
        for peer_id, record in list(self._records.items()):
            if record.connected:
                self._records[peer_id] = replace(record, connected=False)

    def _evict(self) -> None:
        """Keep at most p2p_peers_max peers, dropping the least recently seen non-dial ones."""
        excess = len(self._records) - p2p_peers_max
        if excess <= 0:
            return
        candidates = sorted(
            (record for record in self._records.values() if not record.dial),
            key=lambda record: record.last_seen_ms,
        )
        for record in candidates[:excess]:
            del self._records[record.peer_id]
            self._by_address.pop(parse_address(record.address), None)
