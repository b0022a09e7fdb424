"""A P2PNode's messages owned the way the engine owns them, for tests and benchmarks.

The messenger writes no log: its owner logs each batch of messages it sends (one
append) before handing them over, and what a peer sent (one append per
delivery) before acknowledging it. ``MessageOwner`` does exactly that and no
more, so p2p tests and the p2p benchmark run real messaging with real
durability without an engine; a restart folds the log with the engine's own
fold (``EngineState``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import trio

from node.engine import EngineState
from node.log import EventLog
from node.p2p import Delivery, P2PNode, parse_address
from node.proto import log_pb2, wire_pb2

_NO_APP = "0x" + "00" * 20  # the owner runs no objectives


class MessageOwner:
    """Logs and hands over a node's messages; logs and acknowledges what peers send.

    Args:
        node: the p2p node (not yet running).
        log: its own event log.
        on_delivery: told each delivery once it is logged and acknowledged.
    """

    def __init__(
        self,
        node: P2PNode,
        log: EventLog,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.node = node
        self.log = log
        self.on_delivery = on_delivery
        self.me = parse_address(node.address)
        self.state = EngineState(node.address, _NO_APP, _NO_APP)
        self.ack_times: dict[int, float] = {}
        self._all_acked: dict[bytes, trio.Event] = {}

    def restore(self) -> None:
        """Fold the log; the messenger takes up what is unacknowledged and handled."""
        for record in self.log.read():
            self.state.apply(record)
        self.state.journal.commit()
        outboxes = {peer: dict(box) for peer, box in self.state.outbox.items() if box}
        seen = {peer: (s.contiguous_max, tuple(s.above)) for peer, s in self.state.seen.items()}
        self.node.restore(outboxes, seen)

    def unacknowledged(self, peer: str | bytes) -> int:
        return len(self.state.outbox_of(parse_address(peer)))

    def next_id(self, peer: str | bytes) -> int:
        return self.state.next_id(parse_address(peer))

    async def send(
        self, recipient: str | bytes, messages: Sequence[Sequence[wire_pb2.Payload]]
    ) -> list[int]:
        """Log one message per item of ``messages`` in one append, then hand them over;
        returns their ids."""
        peer = parse_address(recipient)
        time_ms = int(time.time() * 1000)
        records: list[log_pb2.LogRecord] = []
        encoded: list[tuple[int, bytes]] = []
        for offset, payloads in enumerate(messages):
            message_id = self.state.next_id(peer) + offset
            envelope = wire_pb2.Envelope(
                id=message_id, sender=self.me, recipient=peer, payloads=payloads
            )
            record = log_pb2.LogRecord(time_ms=time_ms)
            record.sent_message.peer = peer
            record.sent_message.envelope.CopyFrom(envelope)
            records.append(record)
            encoded.append((message_id, envelope.SerializeToString()))
        await trio.to_thread.run_sync(self.log.append_batch, records)
        for message_id, data in encoded:
            self.state.add_sent(peer, message_id, data)
        self.state.journal.commit()
        self.node.transmit(peer, encoded)
        return [message_id for message_id, _ in encoded]

    async def wait_all_acked(self, recipient: str | bytes) -> None:
        peer = parse_address(recipient)
        if self.state.outbox_of(peer):
            await self._all_acked.setdefault(peer, trio.Event()).wait()

    async def run(self) -> None:
        """Take what peers send: log it, then acknowledge it."""
        async for delivery in self.node.deliveries:
            peer = parse_address(delivery.sender)
            if delivery.acknowledged:
                self._acknowledged(peer, delivery.acknowledged)
            if not delivery.envelopes:
                continue
            ids = [envelope.id for envelope in delivery.envelopes]
            record = log_pb2.LogRecord(time_ms=int(time.time() * 1000))
            record.received_messages.peer = peer
            record.received_messages.message_ids.extend(ids)
            await trio.to_thread.run_sync(self.log.append_batch, [record])
            self.state.add_seen(peer, ids)
            self.state.journal.commit()
            self.node.acknowledge(peer, ids)
            if self.on_delivery is not None:
                self.on_delivery(delivery)

    def _acknowledged(self, peer: bytes, message_ids: Sequence[int]) -> None:
        now = time.perf_counter()
        for message_id in message_ids:
            self.ack_times[message_id] = now
        self.state.forget_acknowledged(peer, tuple(message_ids))
        if not self.state.outbox_of(peer) and peer in self._all_acked:
            self._all_acked.pop(peer).set()
