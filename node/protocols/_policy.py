"""Approval of objectives that peers propose: a pure decision from configured limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import assert_never

from node.core import address_to_destination, to_checksum_address
from node.core.errors import InvalidValueError
from node.protocols._directdefund import DirectDefund
from node.protocols._directfund import DirectFund, funding_thresholds
from node.protocols._objective import Objective


@dataclass(frozen=True)
class Decision:
    """The answer to a proposed objective.

    Attributes:
        approved: whether to take part.
        reason: why not (empty when approved); sent back to the peer.
    """

    approved: bool
    reason: str = ""


ApprovalPolicy = Callable[[Objective], Decision]


@dataclass(frozen=True)
class PolicyLimits:
    """What this node agrees to when a peer proposes a channel.

    Attributes:
        deposit_max: ``(asset, amount)``: the most we deposit per channel in an
            asset; we deposit nothing in an asset not listed.
        counterparties: addresses we open channels with; None: anyone.
    """

    deposit_max: tuple[tuple[str, int], ...]
    counterparties: frozenset[str] | None = None

    def __init__(
        self,
        deposit_max: Mapping[str, int] | Iterable[tuple[str, int]] = (),
        counterparties: Iterable[str] | None = None,
    ) -> None:
        pairs = deposit_max.items() if isinstance(deposit_max, Mapping) else deposit_max
        limits: dict[str, int] = {}
        for asset, amount in pairs:
            checked = to_checksum_address(asset, "deposit_max.asset")
            if type(amount) is not int or amount < 0:
                raise InvalidValueError(f"deposit_max[{checked}]", f"bad amount {amount!r}")
            limits[checked] = amount
        allowed = None
        if counterparties is not None:
            allowed = frozenset(
                to_checksum_address(address, "counterparties") for address in counterparties
            )
        object.__setattr__(self, "deposit_max", tuple(sorted(limits.items())))
        object.__setattr__(self, "counterparties", allowed)

    def deposit_max_of(self, asset: str) -> int:
        """The most we deposit in ``asset`` (0 if it is not listed)."""
        return dict(self.deposit_max).get(to_checksum_address(asset, "asset"), 0)


def approve_within_limits(objective: Objective, limits: PolicyLimits) -> Decision:
    """The default policy: fund channels with allowed peers within the deposit limits;
    always agree to close (refusing would only force the peer to a challenge)."""
    match objective:
        case DirectFund():
            return _approve_direct_fund(objective, limits)
        case DirectDefund():
            return Decision(True)
        case _:
            assert_never(objective)


def _approve_direct_fund(objective: DirectFund, limits: PolicyLimits) -> Decision:
    me = objective.fixed.participants[objective.my_index]
    others = [address for address in objective.fixed.participants if address != me]
    if limits.counterparties is not None:
        strangers = [address for address in others if address not in limits.counterparties]
        if strangers:
            return Decision(False, f"counterparty {strangers[0]} is not allowed")
    destination = address_to_destination(me)
    for asset_exit in objective.outcome:
        threshold, target = funding_thresholds(asset_exit, destination)
        deposit = target - threshold
        allowed = limits.deposit_max_of(asset_exit.asset)
        if deposit > allowed:
            return Decision(
                False, f"deposit of {deposit} in {asset_exit.asset} exceeds the limit {allowed}"
            )
    return Decision(True)


def limits_policy(limits: PolicyLimits) -> ApprovalPolicy:
    """``approve_within_limits`` bound to ``limits``, as an ``ApprovalPolicy``."""

    def policy(objective: Objective) -> Decision:
        return approve_within_limits(objective, limits)

    return policy
