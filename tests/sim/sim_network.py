"""A seeded network between the engines' ``MemoryTransport`` endpoints.

``SimNetwork`` is a ``MemoryNetwork`` whose ``post`` does not hand a packet over at
once: it delays it (a latency drawn per packet, so packets overtake each other),
drops some, duplicates some, and loses everything that crosses a partition or goes
to a node that is down. The transports above it are the engine's own: they
de-duplicate, acknowledge what their engine logged, and send again what is not
acknowledged.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Final

import trio

from node.core import to_checksum_address
from node.engine import MemoryNetwork
from node.proto import wire_pb2

# What travels between endpoints (MemoryNetwork's): sender, envelope or None, acked ids.
Packet = tuple[str, wire_pb2.Envelope | None, tuple[int, ...]]
_INFLIGHT_MAX: Final = 100_000  # packets a network holds at once (beyond: lost)


@dataclass(frozen=True)
class NetworkFaults:
    """How unkind the network is.

    Attributes:
        latency_s: (shortest, longest) one-way delay; drawn per packet.
        drop: chance a packet is lost.
        duplicate: chance a packet arrives twice.
    """

    latency_s: tuple[float, float] = (0.001, 0.001)
    drop: float = 0.0
    duplicate: float = 0.0


class SimNetwork(MemoryNetwork):
    """Endpoints in one process, joined by a lossy, reordering, partitionable network.

    Args:
        rng: the network's random stream.
        faults: delays and losses.
    """

    def __init__(self, rng: random.Random, faults: NetworkFaults) -> None:
        super().__init__()
        self.rng = rng
        self.faults = faults
        self.down: set[str] = set()
        self.cut: set[frozenset[str]] = set()  # pairs that cannot reach each other
        self.nursery: trio.Nursery | None = None
        self.sent = 0
        self.lost = 0
        self.delivered = 0
        self._inflight = 0

    def partition(self, side: set[str], others: set[str]) -> None:
        """Cut every link between ``side`` and ``others``."""
        for left in side:
            for right in others:
                if left != right:
                    self.cut.add(frozenset((left, right)))

    def heal(self) -> None:
        """Every link works again."""
        self.cut.clear()

    def set_down(self, address: str, down: bool) -> None:
        """A node stops (what waits in its inbox is lost) or starts again."""
        key = to_checksum_address(address)
        if not down:
            self.down.discard(key)
            return
        self.down.add(key)
        _, inbox = self.inbox(key)
        with contextlib.suppress(trio.WouldBlock):
            while True:
                inbox.receive_nowait()
                self.lost += 1

    def _blocked(self, sender: str, recipient: str) -> bool:
        return (
            sender in self.down
            or recipient in self.down
            or frozenset((sender, recipient)) in self.cut
            or (sender, recipient) in self.dropped
        )

    def post(self, sender: str, recipient: str, packet: Packet) -> None:
        self.sent += 1
        faults = self.faults
        if self._blocked(sender, recipient) or self.rng.random() < faults.drop:
            self.lost += 1
            return
        copies = 2 if self.rng.random() < faults.duplicate else 1
        for _ in range(copies):
            delay = self.rng.uniform(*faults.latency_s)
            if self.nursery is None or self._inflight >= _INFLIGHT_MAX:
                self.lost += 1
                continue
            self._inflight += 1
            self.nursery.start_soon(self._arrive, delay, sender, recipient, packet)

    async def _arrive(self, delay: float, sender: str, recipient: str, packet: Packet) -> None:
        try:
            await trio.sleep(delay)
        finally:
            self._inflight -= 1
        if self._blocked(sender, recipient):
            self.lost += 1
            return
        try:
            self.inbox(recipient)[0].send_nowait(packet)
        except trio.WouldBlock:
            self.lost += 1  # a full inbox loses it, as a network would
            return
        self.delivered += 1
