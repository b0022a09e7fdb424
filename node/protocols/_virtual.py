"""What VirtualFund and VirtualDefund share: the neighbouring ledgers, the outcome
rule, and the step that asks a ledger for a guarantee change.

A virtual channel has participants ``[Alice, I1..In, Bob]``; participant i and
participant i+1 share a ledger channel. In that ledger the guarantee for the
virtual channel names participant i as left and participant i+1 as right.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.core import (
    FixedPart,
    Guarantee,
    SingleAssetExit,
    address_to_destination,
    channel_id,
    constants,
    to_checksum_address,
)
from node.core.errors import ProtocolError
from node.protocols._effects import LedgerEffect, ProposeLedgerUpdate, SignLedgerProposal
from node.protocols._ledger import LedgerChannel, apply_proposal
from node.protocols._proposals import Add, Proposal, Remove
from node.protocols._view import ObjectiveView

_ZERO_ADDRESS = to_checksum_address("0x" + "00" * constants.address_bytes)


@dataclass(frozen=True)
class VirtualAmounts:
    """The one asset of a virtual channel and the payer's and payee's allocations."""

    asset: str
    payer: int
    payee: int

    @property
    def total(self) -> int:
        """What each ledger on the path locks for the channel."""
        return self.payer + self.payee


def check_payment_app(fixed: FixedPart, payment_app: str) -> None:
    """A virtual channel runs the real VirtualPaymentApp, so vouchers stay enforceable.

    Raises:
        ProtocolError: the app is another, or the given app address is zero.
    """
    app = to_checksum_address(payment_app, "payment_app")
    if app == _ZERO_ADDRESS:
        raise ProtocolError("payment_app: the VirtualPaymentApp address is zero")
    if fixed.app_definition != app:
        raise ProtocolError(
            f"app_definition: {fixed.app_definition} is not the VirtualPaymentApp {payment_app}"
        )
    if len(set(fixed.participants)) != len(fixed.participants):
        raise ProtocolError("participants: an address appears twice on the path")


def virtual_amounts(fixed: FixedPart, outcome: tuple[SingleAssetExit, ...]) -> VirtualAmounts:
    """The amounts of an outcome that must be exactly ``[Alice: a, Bob: b]``.

    Raises:
        ProtocolError: not one asset, or not two simple allocations to the payer
            then the payee.
    """
    if len(outcome) != 1:
        raise ProtocolError(f"outcome: a virtual channel has one asset, not {len(outcome)}")
    (asset_exit,) = outcome
    expected = [address_to_destination(fixed.participants[i]) for i in (0, -1)]
    allocations = asset_exit.allocations
    if [allocation.destination for allocation in allocations] != expected:
        raise ProtocolError("outcome: exactly [payer, payee] allocations are expected")
    if any(
        allocation.allocation_type != constants.allocation_type_simple or allocation.metadata
        for allocation in allocations
    ):
        raise ProtocolError("outcome: a virtual channel's allocations are simple")
    if asset_exit.asset_type != 0 or asset_exit.asset_metadata:
        raise ProtocolError("outcome: a virtual channel's asset metadata is empty")
    return VirtualAmounts(asset_exit.asset, allocations[0].amount, allocations[1].amount)


def guarantee_for(fixed: FixedPart, left_index: int, amount: int) -> Guarantee:
    """The guarantee for the virtual channel in the ledger of ``left_index`` and the next."""
    participants = fixed.participants
    return Guarantee(
        channel_id(fixed),
        amount,
        address_to_destination(participants[left_index]),
        address_to_destination(participants[left_index + 1]),
    )


def add_for(fixed: FixedPart, left_index: int, amounts: VirtualAmounts) -> Add:
    """The ``Add`` that funds the virtual channel in one ledger: left deposits the payer's part."""
    return Add(guarantee_for(fixed, left_index, amounts.total), amounts.payer)


def neighbour_ledgers(
    fixed: FixedPart, my_index: int, asset: str, view: ObjectiveView
) -> tuple[tuple[int, LedgerChannel], ...]:
    """``(left participant index, ledger)`` for each ledger next to us on the path.

    Raises:
        ProtocolError: a ledger is missing, is not with the neighbour, or holds another asset.
    """
    participants = fixed.participants
    sides: list[tuple[int, LedgerChannel | None, str]] = []
    if my_index > 0:
        sides.append((my_index - 1, view.left_ledger, "left_ledger"))
    if my_index < len(participants) - 1:
        sides.append((my_index, view.right_ledger, "right_ledger"))
    found: list[tuple[int, LedgerChannel]] = []
    for left_index, ledger, name in sides:
        pair = (participants[left_index], participants[left_index + 1])
        neighbour = pair[1] if left_index == my_index else pair[0]
        if ledger is None:
            raise ProtocolError(f"{name}: no ledger with {neighbour}")
        if set(ledger.fixed.participants) != set(pair):
            raise ProtocolError(
                f"{name}: ledger 0x{ledger.id.hex()} is not between us and {neighbour}"
            )
        if ledger.outcome.asset != asset:
            raise ProtocolError(f"{name}: ledger 0x{ledger.id.hex()} holds another asset")
        found.append((left_index, ledger))
    return tuple(found)


def ledger_step(ledger: LedgerChannel, proposal: Proposal) -> tuple[tuple[LedgerEffect, ...], bool]:
    """The effect that moves ``ledger`` towards ``proposal``, and whether its consensus has it.

    An ``Add`` is done once the consensus holds the guarantee, a ``Remove`` once
    it no longer does. The leader proposes once (the engine re-sends what is
    unacknowledged); the follower asks to countersign ``proposal`` once it is
    queued, and the engine signs it when it reaches the head of the queue.

    Raises:
        ProtocolError: the consensus holds another guarantee for the target, or
            the ledger cannot take the proposal (a party short of funds).
    """
    target = proposal.guarantee.target if isinstance(proposal, Add) else proposal.target
    present = ledger.outcome.guarantee_of(target)
    if isinstance(proposal, Add) and present is not None:
        if present != proposal.guarantee:
            raise ProtocolError(
                f"ledger 0x{ledger.id.hex()}: another guarantee for 0x{target.hex()}"
            )
        return (), True
    if isinstance(proposal, Remove) and present is None:
        return (), True
    if ledger.is_leader:
        if ledger.queues(proposal) or len(ledger.queue) >= constants.ledger_proposals_queued_max:
            return (), False  # proposed already, or no room until the follower answers
        apply_proposal(ledger.latest()[1], proposal)
        return (ProposeLedgerUpdate(ledger.id, proposal),), False
    if ledger.queues(proposal):
        # Asked for wherever it is queued: the engine countersigns it once it is the
        # head (or in a run that pays back stray guarantees ahead of it).
        return (SignLedgerProposal(ledger.id, proposal),), False
    return (), False
