"""Messaging state of one peer: what we sent it unacknowledged, and the ids we handled.

Ids are counted per (sender, recipient) pair from 1, so the receiver can keep
"everything up to N, plus these few above" instead of every id it ever saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from node.p2p._framing import envelope_field
from node.proto import wire_pb2


class SeenIds:
    """The set of message ids received from one peer, compacted below a watermark."""

    def __init__(self) -> None:
        self.contiguous_max = 0  # every id in 1..contiguous_max was seen
        self._above: set[int] = set()

    def __contains__(self, message_id: object) -> bool:
        if not isinstance(message_id, int):
            return False
        return 0 < message_id <= self.contiguous_max or message_id in self._above

    def restore(self, contiguous_max: int, above: Iterable[int]) -> None:
        """Start from what an earlier run handled (``contiguous_max`` and ids above it)."""
        self.contiguous_max = max(self.contiguous_max, contiguous_max)
        self._above = {message_id for message_id in self._above if message_id > contiguous_max}
        self.add_all(above)

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
        self.add_encoded(envelope.id, encoded)

    def add_encoded(self, message_id: int, encoded: bytes) -> None:
        """Track a logged envelope, given its id and its bytes."""
        assert message_id not in self.unacked
        self.unacked[message_id] = envelope_field(encoded)
        self.next_id = max(self.next_id, message_id + 1)

    def acknowledge(self, message_ids: Iterable[int]) -> list[int]:
        """Drop acknowledged ids; returns those that were outstanding."""
        removed: list[int] = []
        for message_id in message_ids:
            if self.unacked.pop(message_id, None) is not None:
                removed.append(message_id)
        return removed
