"""Approval of objectives that peers propose: a pure decision from configured limits."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import assert_never

from node.core import address_to_destination, constants, to_checksum_address
from node.core.errors import InvalidValueError
from node.protocols._defend import Defend
from node.protocols._directdefund import DirectDefund
from node.protocols._directfund import DirectFund, funding_thresholds
from node.protocols._guard import Guard
from node.protocols._objective import Objective
from node.protocols._settle import Settle
from node.protocols._virtualdefund import VirtualDefund
from node.protocols._virtualfund import VirtualFund


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
        deposit_max: ``(asset, amount)``: the most a peer's channel takes from us in
            an asset: a deposit on chain for a ledger channel, what our ledgers lock
            for a virtual channel; nothing in an asset not listed.
        counterparties: addresses we open channels with; None: anyone.
        challenge_duration_s_min: the shortest challenge duration we accept: a shorter
            one could let a stale challenge finalize before the node can answer it.
        challenge_duration_s_max: the longest: funds stay locked that long in a dispute.
    """

    deposit_max: tuple[tuple[str, int], ...]
    counterparties: frozenset[str] | None = None
    challenge_duration_s_min: int = constants.challenge_duration_s_min_default
    challenge_duration_s_max: int = constants.challenge_duration_s_max_default

    def __init__(
        self,
        deposit_max: Mapping[str, int] | Iterable[tuple[str, int]] = (),
        counterparties: Iterable[str] | None = None,
        *,
        challenge_duration_s_min: int = constants.challenge_duration_s_min_default,
        challenge_duration_s_max: int = constants.challenge_duration_s_max_default,
    ) -> None:
        if not 0 <= challenge_duration_s_min <= challenge_duration_s_max:
            raise InvalidValueError(
                "challenge_duration_s_min", "must lie in 0..challenge_duration_s_max"
            )
        if challenge_duration_s_max > constants.challenge_duration_s_max:
            raise InvalidValueError("challenge_duration_s_max", "exceeds uint48")
        object.__setattr__(self, "challenge_duration_s_min", challenge_duration_s_min)
        object.__setattr__(self, "challenge_duration_s_max", challenge_duration_s_max)
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

    def check_challenge_duration(self, seconds: int) -> Decision:
        """Whether a channel with this challenge duration is acceptable."""
        low, high = self.challenge_duration_s_min, self.challenge_duration_s_max
        if not low <= seconds <= high:
            return Decision(
                False, f"challenge duration {seconds} s is outside the {low}..{high} s accepted"
            )
        return Decision(True)

    def deposit_max_of(self, asset: str) -> int:
        """The most we deposit in ``asset`` (0 if it is not listed)."""
        return dict(self.deposit_max).get(to_checksum_address(asset, "asset"), 0)


def approve_within_limits(objective: Objective, limits: PolicyLimits) -> Decision:
    """The default policy: fund channels with allowed peers within the deposit limits;
    always agree to close (refusing would only force the peer to a challenge)."""
    match objective:
        case DirectFund():
            return _approve_direct_fund(objective, limits)
        case VirtualFund():
            return _approve_virtual_fund(objective, limits)
        case DirectDefund() | VirtualDefund():
            return Decision(True)
        case Settle() | Defend() | Guard():
            return Decision(False, "a dispute is this node's own decision")
        case _:
            assert_never(objective)


def _refused_strangers(me: str, participants: Iterable[str], limits: PolicyLimits) -> Decision:
    if limits.counterparties is not None:
        strangers = [p for p in participants if p != me and p not in limits.counterparties]
        if strangers:
            return Decision(False, f"counterparty {strangers[0]} is not allowed")
    return Decision(True)


def _approve_virtual_fund(objective: VirtualFund, limits: PolicyLimits) -> Decision:
    """Our neighbours on the path must be allowed, the challenge duration within bounds,
    and what our ledgers lock within the limit: the payer's amount towards the payee,
    the payee's amount towards the payer."""
    duration = limits.check_challenge_duration(objective.fixed.challenge_duration)
    if not duration.approved:
        return duration
    participants = objective.fixed.participants
    me = objective.my_index
    neighbours = participants[max(me - 1, 0) : me + 2]
    decision = _refused_strangers(participants[me], neighbours, limits)
    if not decision.approved:
        return decision
    amounts = objective.amounts
    locked = (amounts.payer if me < len(participants) - 1 else 0) + (amounts.payee if me > 0 else 0)
    allowed = limits.deposit_max_of(amounts.asset)
    if locked > allowed:
        return Decision(False, f"locking {locked} of {amounts.asset} exceeds the limit {allowed}")
    return Decision(True)


def _approve_direct_fund(objective: DirectFund, limits: PolicyLimits) -> Decision:
    duration = limits.check_challenge_duration(objective.fixed.challenge_duration)
    if not duration.approved:
        return duration
    me = objective.fixed.participants[objective.my_index]
    decision = _refused_strangers(me, objective.fixed.participants, limits)
    if not decision.approved:
        return decision
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
