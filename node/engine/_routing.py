"""Routes for virtual channels: what this node offers on gossip, and paths to a payee.

Every node announces its open ledger channels with what it can forward through
each (its own balance there). A payer without a path of its own finds the
shortest one through its own ledgers and the announced ones (``find_route``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

from node.core import address_from_bytes, address_to_bytes, uint256_from_bytes, uint256_to_bytes
from node.core.errors import InvalidValueError, ProtocolError
from node.derive import Deriver
from node.engine._errors import CommandRefusedError, Refusal
from node.proto import wire_pb2
from node.protocols import LedgerChannel, find_route

# (node address, its announced ledger offers), from the gossip directory.
Announced = Callable[[], Iterable[tuple[str, Sequence[wire_pb2.LedgerOffer]]]]


class RoutingMixin:
    """The engine's routing side (mixed into ``Engine``, which provides the state)."""

    address: str
    deriver: Deriver
    ledger_runtime: Callable[[bytes], LedgerChannel | None]
    _ledger_ids: Callable[[], dict[str, tuple[bytes, ...]]]
    announced: Announced | None  # set by the node once gossip runs

    def ledger_offers(self) -> list[wire_pb2.LedgerOffer]:
        """Our open ledgers and our balance in each: what gossip announces."""
        offers = []
        for ledger_id in self._ledger_ids().get(self.address, ()):
            ledger = self.ledger_runtime(ledger_id)
            if ledger is None:
                continue
            outcome = ledger.outcome
            mine = outcome.leader if ledger.my_index == 0 else outcome.follower
            counterparty = ledger.fixed.participants[1 - ledger.my_index]
            offers.append(
                wire_pb2.LedgerOffer(
                    channel_id=ledger.id,
                    counterparty=address_to_bytes(counterparty),
                    asset=address_to_bytes(outcome.asset),
                    capacity=uint256_to_bytes(mine.amount),
                )
            )
        return offers

    def find_intermediaries(
        self, payee: str, amount: int, asset: str, excluded: frozenset[bytes] = frozenset()
    ) -> tuple[list[str], list[tuple[bytes, int]]]:
        """The intermediaries of the shortest path to ``payee`` whose every hop can lock
        ``amount`` of ``asset``, leaving out the ledgers ``excluded``; and the ledgers of
        the path's hops that others announced, with the capacity claimed for each (to
        check against the chain).

        Raises:
            CommandRefusedError: no known path.
        """
        directory: dict[str, list[tuple[str, int]]] = {}
        ledgers: dict[tuple[str, str], tuple[bytes, int]] = {}
        self._add_offers(directory, ledgers, self.address, self.ledger_offers(), asset, excluded)
        for node, offers in self.announced() if self.announced is not None else ():
            if node != self.address:
                self._add_offers(directory, ledgers, node, offers, asset, excluded)
        try:
            route = find_route(directory, self.address, payee, amount)
        except (InvalidValueError, ProtocolError) as error:
            raise CommandRefusedError(Refusal.INVALID, str(error)) from None
        if route is None:
            raise CommandRefusedError(
                Refusal.CONFLICT,
                f"no route to {payee} that can carry {amount} of {asset} "
                f"(known ledgers of {len(directory)} nodes; give intermediaries to choose one)",
            )
        announced = [
            ledgers[(node, peer)]
            for node, peer in itertools.pairwise(route)
            if self.address not in (node, peer) and (node, peer) in ledgers
        ]
        return list(route[1:-1]), announced

    @staticmethod
    def _add_offers(
        directory: dict[str, list[tuple[str, int]]],
        ledgers: dict[tuple[str, str], tuple[bytes, int]],
        node: str,
        offers: Iterable[wire_pb2.LedgerOffer],
        asset: str,
        excluded: frozenset[bytes],
    ) -> None:
        wanted = address_to_bytes(asset)
        for offer in offers:
            if offer.asset != wanted or offer.channel_id in excluded:
                continue
            try:
                peer = address_from_bytes(offer.counterparty, "counterparty")
                capacity = uint256_from_bytes(offer.capacity, "capacity")
            except InvalidValueError:
                continue  # gossip checked these; never let one bad offer stop a route
            directory.setdefault(node, []).append((peer, capacity))
            known = ledgers.get((node, peer))
            if known is None or known[1] < capacity:
                ledgers[(node, peer)] = (offer.channel_id, capacity)
