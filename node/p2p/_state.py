"""Messaging state rebuilt from the event log: outboxes and de-duplication sets.

Ids are counted per (sender, recipient) pair from 1, so the receiver can keep
"everything up to N, plus these few above" instead of every id it ever saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from node.p2p._framing import envelope_field
from node.proto import log_pb2, wire_pb2


class SeenIds:
    """The set of message ids received from one peer, compacted below a watermark."""

    def __init__(self) -> None:
        self.contiguous_max = 0  # every id in 1..contiguous_max was seen
        self._above: set[int] = set()

    def __contains__(self, message_id: object) -> bool:
        if not isinstance(message_id, int):
            return False
        return 0 < message_id <= self.contiguous_max or message_id in self._above

    def add_all(self, message_ids: Iterable[int]) -> None:
        """Mark ids as seen; keeps the watermark as high as possible."""
        for message_id in message_ids:
            if message_id > self.contiguous_max:
                self._above.add(message_id)
        while self.contiguous_max + 1 in self._above:
            self.contiguous_max += 1
            self._above.remove(self.contiguous_max)
        assert all(message_id > self.contiguous_max for message_id in self._above)

    def __len__(self) -> int:
        return self.contiguous_max + len(self._above)

    @property
    def sparse_count(self) -> int:
        """Ids held individually above the watermark (memory use)."""
        return len(self._above)


@dataclass
class Outbox:
    """Messages to one peer that were logged as sent but not acknowledged."""

    next_id: int = 1
    unacked: dict[int, bytes] = field(default_factory=dict)  # id -> Frame.messages field

    def add_logged(self, envelope: wire_pb2.Envelope, encoded: bytes) -> None:
        """Track an envelope that the log now holds as a SentMessage."""
        assert envelope.id not in self.unacked
        self.unacked[envelope.id] = envelope_field(encoded)
        self.next_id = max(self.next_id, envelope.id + 1)

    def acknowledge(self, message_ids: Iterable[int]) -> list[int]:
        """Drop acknowledged ids; returns those that were outstanding."""
        removed: list[int] = []
        for message_id in message_ids:
            if self.unacked.pop(message_id, None) is not None:
                removed.append(message_id)
        return removed


@dataclass
class MessagingState:
    """Outboxes and seen-id sets of every peer, keyed by 20-byte address."""

    outboxes: dict[bytes, Outbox] = field(default_factory=dict)
    seen: dict[bytes, SeenIds] = field(default_factory=dict)

    def outbox(self, peer: bytes) -> Outbox:
        """The outbox of a peer, created empty on first use."""
        box = self.outboxes.get(peer)
        if box is None:
            box = self.outboxes[peer] = Outbox()
        return box

    def seen_ids(self, peer: bytes) -> SeenIds:
        """The seen-id set of a peer, created empty on first use."""
        ids = self.seen.get(peer)
        if ids is None:
            ids = self.seen[peer] = SeenIds()
        return ids

    def apply(self, record: log_pb2.LogRecord) -> None:
        """Fold one log record; records of other kinds are ignored."""
        kind = record.WhichOneof("payload")
        if kind == "sent_message":
            sent = record.sent_message
            box = self.outbox(sent.peer)
            if sent.envelope.id not in box.unacked:
                box.add_logged(sent.envelope, sent.envelope.SerializeToString())
        elif kind == "acknowledgement":
            self.outbox(record.acknowledgement.peer).acknowledge(record.acknowledgement.message_ids)
        elif kind == "received_messages":
            received = record.received_messages
            self.seen_ids(received.peer).add_all(received.message_ids)


def rebuild_state(records: Iterator[log_pb2.LogRecord]) -> MessagingState:
    """The messaging state after folding a log from its start."""
    state = MessagingState()
    for record in records:
        state.apply(record)
    return state
