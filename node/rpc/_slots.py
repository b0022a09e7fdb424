"""Connection slots: a global cap, and a smaller one for connections not yet authenticated.

A connection counts as unauthenticated from its accept until a request on it shows
the token. When a new connection finds no unauthenticated slot free (or no slot at
all), the oldest unauthenticated connection is evicted for it: a flood of silent or
token-less connections churns among itself and never takes the slots of
authenticated clients, while an honest client, which sends its token in its first
request head, is authenticated long before a flood can push it out. Only when every
slot belongs to an authenticated connection is a new one refused.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import trio


@dataclass(frozen=True)
class ConnectionStatistics:
    """A snapshot of the slots.

    Attributes:
        connections: connections holding a slot now.
        unauthenticated: of those, connections that have not shown the token yet.
        evicted_total: unauthenticated connections evicted for newer ones so far.
        refused_total: connections refused because authenticated ones held every slot.
    """

    connections: int
    unauthenticated: int
    evicted_total: int
    refused_total: int


class Slot:
    """One connection's slot; ``scope`` is cancelled if the connection is evicted."""

    __slots__ = ("authenticated", "held", "scope")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.authenticated = False
        self.held = True


class ConnectionSlots:
    """Admits, authenticates, evicts and releases connections.

    Args:
        connections_max: connections held at once, authenticated or not.
        unauthenticated_max: of those, connections not yet authenticated.

    Raises:
        ValueError: a bound is not positive, or ``unauthenticated_max`` is above
            ``connections_max``.
    """

    def __init__(self, *, connections_max: int, unauthenticated_max: int) -> None:
        if connections_max <= 0:
            raise ValueError(f"connections_max: {connections_max} is not positive")
        if not 0 < unauthenticated_max <= connections_max:
            raise ValueError(
                f"unauthenticated_max: {unauthenticated_max} is not in [1, {connections_max}]"
            )
        self._connections_max = connections_max
        self._unauthenticated_max = unauthenticated_max
        self._authenticated = 0
        # Oldest first: eviction takes from the front.
        self._unauthenticated: OrderedDict[Slot, None] = OrderedDict()
        self._evicted_total = 0
        self._refused_total = 0

    @property
    def count(self) -> int:
        """Connections holding a slot now."""
        return self._authenticated + len(self._unauthenticated)

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            connections=self.count,
            unauthenticated=len(self._unauthenticated),
            evicted_total=self._evicted_total,
            refused_total=self._refused_total,
        )

    def admit(self, scope: trio.CancelScope) -> Slot | None:
        """A slot for a new connection, evicting the oldest unauthenticated ones if needed.

        Returns:
            The slot, or ``None`` when authenticated connections hold every slot.
        """
        while self._unauthenticated and (
            len(self._unauthenticated) >= self._unauthenticated_max
            or self.count >= self._connections_max
        ):
            oldest, _ = self._unauthenticated.popitem(last=False)
            oldest.held = False
            reason = "evicted: a newer connection needed its slot"
            oldest.scope.cancel(reason=reason)  # type: ignore[call-arg]
            self._evicted_total += 1
        if self.count >= self._connections_max:
            assert not self._unauthenticated
            self._refused_total += 1
            return None
        slot = Slot(scope)
        self._unauthenticated[slot] = None
        assert len(self._unauthenticated) <= self._unauthenticated_max
        assert self.count <= self._connections_max
        return slot

    def authenticate(self, slot: Slot) -> None:
        """The connection showed the token: it keeps its slot until it closes."""
        if slot.authenticated or not slot.held:
            return  # a keep-alive connection's later request, or one evicted meanwhile
        del self._unauthenticated[slot]
        slot.authenticated = True
        self._authenticated += 1

    def release(self, slot: Slot) -> None:
        """The connection closed (or was evicted: then its slot is free already)."""
        if not slot.held:
            return
        slot.held = False
        if slot.authenticated:
            self._authenticated -= 1
            assert self._authenticated >= 0
        else:
            del self._unauthenticated[slot]
