"""Route finding: shortest paths with enough capacity, deterministic ties, and properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import address_from_bytes, address_to_bytes
from node.core.errors import InvalidValueError, ProtocolError
from node.protocols import find_route


def node(number: int) -> str:
    """A checksummed address whose byte order is ``number``'s order."""
    return address_from_bytes(number.to_bytes(20, "big"))


A, B, C, D, E = (node(n) for n in (10, 20, 30, 40, 50))


def test_direct_route_and_one_and_two_hops() -> None:
    assert find_route({A: [(B, 5)]}, A, B, 5) == (A, B)
    assert find_route({A: [(C, 5)], C: [(B, 5)]}, A, B, 5) == (A, C, B)
    chain = {A: [(C, 5)], C: [(D, 5)], D: [(B, 5)]}
    assert find_route(chain, A, B, 5) == (A, C, D, B)


def test_no_route() -> None:
    assert find_route({}, A, B, 1) is None
    assert find_route({A: [(C, 5)]}, A, B, 1) is None
    # Only B announced the ledger: A cannot forward through it.
    assert find_route({B: [(A, 5)]}, A, B, 1) is None


def test_capacity_limits_choose_a_longer_route() -> None:
    directory = {A: [(B, 3), (C, 10)], C: [(D, 10)], D: [(B, 10)]}
    assert find_route(directory, A, B, 3) == (A, B)
    assert find_route(directory, A, B, 4) == (A, C, D, B)
    assert find_route(directory, A, B, 11) is None


def test_cycles_end() -> None:
    directory = {A: [(C, 5)], C: [(D, 5)], D: [(C, 5), (A, 5)], E: [(B, 5)]}
    assert find_route(directory, A, B, 1) is None
    directory[D].append((E, 5))
    assert find_route(directory, A, B, 1) == (A, C, D, E, B)


def test_ties_break_by_address_whatever_the_announcement_order() -> None:
    forward = {A: [(C, 5), (D, 5)], C: [(B, 5)], D: [(B, 5)]}
    backward = {D: [(B, 5)], C: [(B, 5)], A: [(D, 5), (C, 5)]}
    assert find_route(forward, A, B, 1) == find_route(backward, A, B, 1) == (A, C, B)


def test_addresses_are_normalised() -> None:
    assert find_route({A.lower(): [(B.lower(), 5)]}, A.lower(), B, 5) == (A, B)


def test_path_length_is_bounded() -> None:
    chain = [A, *(node(100 + n) for n in range(5)), B]
    directory = {chain[i]: [(chain[i + 1], 5)] for i in range(len(chain) - 1)}
    assert find_route(directory, A, B, 1) == tuple(chain)
    assert find_route(directory, A, B, 1, participants_max=len(chain) - 1) is None


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ProtocolError, match="itself"):
        find_route({}, A, A, 1)
    with pytest.raises(InvalidValueError, match="amount"):
        find_route({}, A, B, -1)
    with pytest.raises(InvalidValueError, match="capacity"):
        find_route({A: [(B, -5)]}, A, B, 1)
    with pytest.raises(InvalidValueError, match="payee"):
        find_route({}, A, "0x1234", 1)


def _reference_distance(edges: set[tuple[int, int]], start: int, goal: int) -> int | None:
    """Hops of a shortest path by repeated relaxation (independent of the BFS)."""
    distance = {start: 0}
    for _ in range(len(edges) + 1):
        for u, v in edges:
            if u in distance and distance[u] + 1 < distance.get(v, 1 << 30):
                distance[v] = distance[u] + 1
    return distance.get(goal)


graphs = st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 10)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(offers=graphs, amount=st.integers(0, 10))
def test_route_is_a_shortest_path_of_usable_hops(
    offers: list[tuple[int, int, int]], amount: int
) -> None:
    directory: dict[str, list[tuple[str, int]]] = {}
    for origin, peer, capacity in offers:
        directory.setdefault(node(origin + 1), []).append((node(peer + 1), capacity))
    start, goal = node(1), node(2)
    route = find_route(directory, start, goal, amount)
    usable = {(o + 1, p + 1) for o, p, capacity in offers if capacity >= amount and o != p}
    expected = _reference_distance(usable, 1, 2)
    if route is None:
        assert expected is None
        return
    assert route[0] == start
    assert route[-1] == goal
    assert len(set(route)) == len(route)
    numbers = [int.from_bytes(address_to_bytes(address), "big") for address in route]
    assert all(pair in usable for pair in itertools.pairwise(numbers))
    assert len(route) - 1 == expected
    reordered = {key: list(reversed(value)) for key, value in reversed(directory.items())}
    assert find_route(reordered, start, goal, amount) == route
