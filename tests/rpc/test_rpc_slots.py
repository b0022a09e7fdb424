"""Connection slots: the oldest unauthenticated evicted first, refusal only when all are taken."""

from __future__ import annotations

import pytest
import trio

from node.rpc._slots import ConnectionSlots, Slot


# The tests are async: cancelling a scope with a reason needs a running trio.
def admit(slots: ConnectionSlots) -> Slot:
    slot = slots.admit(trio.CancelScope())
    assert slot is not None
    return slot


async def test_the_oldest_unauthenticated_connection_is_evicted_first() -> None:
    slots = ConnectionSlots(connections_max=10, unauthenticated_max=3)
    first, second, third = admit(slots), admit(slots), admit(slots)
    fourth = admit(slots)
    assert first.scope.cancel_called
    assert not first.held
    assert [second.scope.cancel_called, third.scope.cancel_called] == [False, False]
    assert fourth.held
    statistics = slots.statistics()
    assert (statistics.connections, statistics.unauthenticated) == (3, 3)
    assert statistics.evicted_total == 1
    slots.release(first)  # the evicted connection's own release frees nothing twice
    assert slots.count == 3


async def test_authenticated_connections_are_never_evicted() -> None:
    slots = ConnectionSlots(connections_max=4, unauthenticated_max=2)
    kept = [admit(slots) for _ in range(3)]
    assert kept[0].scope.cancel_called  # evicted by the third before it authenticated
    slots.authenticate(kept[1])
    slots.authenticate(kept[2])
    flood = [admit(slots) for _ in range(20)]
    assert [kept[1].scope.cancel_called, kept[2].scope.cancel_called] == [False, False]
    assert [slot.held for slot in flood[-2:]] == [True, True]
    assert not any(slot.held for slot in flood[:-2])
    assert slots.statistics().connections == 4


async def test_a_full_server_evicts_before_it_refuses() -> None:
    slots = ConnectionSlots(connections_max=3, unauthenticated_max=3)
    first, second, third = admit(slots), admit(slots), admit(slots)
    slots.authenticate(first)
    slots.authenticate(second)
    newcomer = admit(slots)  # no room at all: the unauthenticated third goes
    assert third.scope.cancel_called
    slots.authenticate(newcomer)
    assert slots.admit(trio.CancelScope()) is None  # every slot authenticated: refused
    assert slots.statistics().refused_total == 1
    slots.release(first)
    assert admit(slots).held


async def test_authenticating_an_evicted_or_authenticated_slot_changes_nothing() -> None:
    slots = ConnectionSlots(connections_max=2, unauthenticated_max=1)
    evicted = admit(slots)
    current = admit(slots)
    slots.authenticate(evicted)
    assert not evicted.authenticated
    slots.authenticate(current)
    slots.authenticate(current)  # a keep-alive connection's next request
    assert slots.statistics().connections == 1
    slots.release(current)
    slots.release(current)
    assert slots.count == 0


@pytest.mark.parametrize(
    ("connections_max", "unauthenticated_max", "name"),
    [(0, 1, "connections_max"), (4, 0, "unauthenticated_max"), (4, 5, "unauthenticated_max")],
)
def test_bounds_are_checked(connections_max: int, unauthenticated_max: int, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ConnectionSlots(connections_max=connections_max, unauthenticated_max=unauthenticated_max)
