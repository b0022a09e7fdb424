"""Route finding: a path of ledger channels from payer to payee (pure).

The directory comes from gossip announcements: each node lists the ledger
channels it forwards through, with the counterparty and what it can forward
(its capacity). A hop from A to B is usable when A announced the ledger with B
and a capacity of at least the amount. The search is breadth first, so the
route has the fewest hops; among equally short routes it takes the one whose
addresses come first in byte order, so every node finds the same route.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from node.core import address_to_bytes, constants, to_checksum_address
from node.core.errors import InvalidValueError, ProtocolError

Directory = Mapping[str, Iterable[tuple[str, int]]]


def _usable_hops(directory: Directory, amount: int) -> dict[str, list[str]]:
    """For each node, the counterparties it can forward ``amount`` to, in byte order."""
    hops: dict[str, set[str]] = {}
    for node, offers in directory.items():
        origin = to_checksum_address(node, "directory")
        for counterparty, capacity in offers:
            if type(capacity) is not int or capacity < 0:
                raise InvalidValueError(f"directory[{origin}]", f"bad capacity {capacity!r}")
            peer = to_checksum_address(counterparty, f"directory[{origin}]")
            if capacity >= amount and peer != origin:
                hops.setdefault(origin, set()).add(peer)
    return {
        node: sorted(peers, key=lambda peer: address_to_bytes(peer)) for node, peers in hops.items()
    }


def find_route(
    directory: Directory,
    payer: str,
    payee: str,
    amount: int,
    participants_max: int = constants.participants_max,
) -> tuple[str, ...] | None:
    """The shortest path ``(payer, I1, .., In, payee)`` whose every hop can carry ``amount``.

    Args:
        directory: node address -> ``(counterparty address, capacity)`` offers.
        payer: where the payment starts.
        payee: where it ends.
        amount: what each hop must be able to forward (>= 0).
        participants_max: the longest path accepted (a virtual channel's participants).

    Returns:
        The addresses in order, checksummed; None when no route exists.

    Raises:
        InvalidValueError: a bad address, capacity or amount.
        ProtocolError: payer and payee are the same.
    """
    if type(amount) is not int or amount < 0:
        raise InvalidValueError("amount", f"{amount!r} is not a non-negative integer")
    start = to_checksum_address(payer, "payer")
    goal = to_checksum_address(payee, "payee")
    if start == goal:
        raise ProtocolError("payee: a node does not pay itself")
    hops = _usable_hops(directory, amount)
    # Breadth first: the first time a node is reached is by a shortest path, and
    # visiting neighbours in byte order makes that path the least in byte order.
    previous: dict[str, str] = {start: start}
    frontier = deque([(start, 1)])
    while frontier:
        node, length = frontier.popleft()
        if length >= participants_max:
            continue
        for peer in hops.get(node, ()):
            if peer in previous:
                continue
            previous[peer] = node
            if peer == goal:
                return _path_to(previous, goal)
            frontier.append((peer, length + 1))
    return None


def _path_to(previous: dict[str, str], goal: str) -> tuple[str, ...]:
    path = [goal]
    while previous[path[-1]] != path[-1]:
        path.append(previous[path[-1]])
    return tuple(reversed(path))
