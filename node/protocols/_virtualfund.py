"""VirtualFund: open a virtual channel over ledger channels (PROTOCOL.md §3).

Participants ``[Alice, I1..In, Bob]``, outcome exactly ``[Alice: a, Bob: b]``.
Everyone signs the prefund; then each ledger on the path gets a guarantee for
the virtual channel (amount a + b, left deposits a), proposed by the ledger's
leader and countersigned by its follower; once our ledgers' consensus holds
it we sign the postfund. Intermediaries are done then; Alice and Bob wait for
every postfund signature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from node.core import FixedPart, Signer, SingleAssetExit, State, channel_id, constants
from node.core.errors import ProtocolError
from node.protocols._checks import check_crank_inputs, participant_index
from node.protocols._effects import (
    CrankResult,
    Event,
    StateReceived,
    TransactionFailed,
    TransactionSubmitted,
)
from node.protocols._ids import ObjectiveId, ObjectiveKind
from node.protocols._setup import (
    SetupStage,
    check_setup_state,
    crank_setup,
    from_prefund,
    setup_state,
    sign_postfund,
)
from node.protocols._view import ObjectiveView
from node.protocols._virtual import (
    VirtualAmounts,
    add_for,
    check_payment_app,
    ledger_step,
    neighbour_ledgers,
    virtual_amounts,
)
from node.protocols._waiting import VirtualFundWaitingFor


@dataclass(frozen=True)
class VirtualFund:
    """A VirtualFund objective.

    Attributes:
        fixed: the virtual channel's fixed part.
        outcome: ``[Alice: a, Bob: b]`` in one asset.
        my_index: our participant index.
    """

    fixed: FixedPart
    outcome: tuple[SingleAssetExit, ...]
    my_index: int

    def __post_init__(self) -> None:
        assert 0 <= self.my_index < len(self.fixed.participants)

    @property
    def id(self) -> ObjectiveId:
        """This objective's id."""
        return ObjectiveId(ObjectiveKind.VIRTUAL_FUND, channel_id(self.fixed))

    @property
    def channel_id(self) -> bytes:
        """The id of the virtual channel."""
        return channel_id(self.fixed)

    @property
    def amounts(self) -> VirtualAmounts:
        """The asset, the payer's and the payee's allocations."""
        return virtual_amounts(self.fixed, self.outcome)

    @property
    def is_intermediary(self) -> bool:
        """Whether we only forward (neither the payer nor the payee)."""
        return 0 < self.my_index < len(self.fixed.participants) - 1

    def setup_state(self, turn_num: int) -> State:
        """The prefund (turn 0) or postfund (turn 1) state."""
        return setup_state(self.fixed, self.outcome, turn_num)


def new_virtual_fund(
    fixed: FixedPart,
    outcome: Sequence[SingleAssetExit],
    my_address: str,
    payment_app: str,
) -> VirtualFund:
    """A VirtualFund objective, checked against the protocol's rules.

    Args:
        fixed: ``[Alice, I1..In, Bob]``, each once; the app is the VirtualPaymentApp.
        outcome: exactly ``[Alice: a, Bob: b]`` in one asset, simple allocations.
        my_address: our address, a participant.
        payment_app: the VirtualPaymentApp's address on this chain (never zero).

    Raises:
        ProtocolError: a rule above is broken.
    """
    check_payment_app(fixed, payment_app)
    exits = tuple(outcome)
    amounts = virtual_amounts(fixed, exits)
    if amounts.total > constants.uint256_max:
        raise ProtocolError("outcome: a + b exceeds uint256")
    return VirtualFund(fixed, exits, participant_index(fixed, my_address))


def virtual_fund_from_prefund(
    event: StateReceived, my_address: str, payment_app: str
) -> VirtualFund:
    """The objective a peer proposes by sending its signed prefund (before approval).

    Raises:
        PeerStateError: the state is not a valid prefund of a virtual channel we are in.
    """
    return from_prefund(
        event,
        lambda fixed, outcome: new_virtual_fund(fixed, outcome, my_address, payment_app),
        update_virtual_fund,
    )


def update_virtual_fund(objective: VirtualFund, event: Event) -> VirtualFund:
    """``objective`` after ``event``; a peer's state is only checked (the log keeps it).

    Raises:
        PeerStateError: a peer's state is not this channel's prefund or postfund.
        ProtocolError: a transaction record (VirtualFund submits none).
    """
    match event:
        case StateReceived():
            check_setup_state(objective.fixed, objective.outcome, objective.my_index, event)
            return objective
        case TransactionSubmitted() | TransactionFailed():
            raise ProtocolError(f"transaction: {objective.id} submits no transaction")
        case _:
            assert_never(event)


def crank_virtual_fund(
    objective: VirtualFund, view: ObjectiveView, signer: Signer
) -> CrankResult[VirtualFund]:
    """One step of VirtualFund: the effects due now and where it waits.

    Safe to call any number of times: progress is read from ``view`` only.

    Raises:
        ProtocolError: the view or signer is not this objective's, a ledger next
            to us is missing or cannot fund the channel, or the channel supports
            a setup state other than ours.
    """
    channel = view.channel
    check_crank_inputs(objective.fixed, objective.my_index, channel, signer)
    me = objective.my_index
    effects, stage = crank_setup(objective.id, objective.outcome, me, channel, signer)
    match stage:
        case SetupStage.FUNDED:
            return CrankResult(objective, (), VirtualFundWaitingFor.DONE)
        case SetupStage.PREFUND:
            return CrankResult(objective, tuple(effects), VirtualFundWaitingFor.COMPLETE_PREFUND)
        case SetupStage.FUNDING:
            funded = True
            amounts = objective.amounts
            ledgers = neighbour_ledgers(objective.fixed, me, amounts.asset, view)
            for left_index, ledger in ledgers:
                asked, done = ledger_step(ledger, add_for(objective.fixed, left_index, amounts))
                effects.extend(asked)
                funded = funded and done
            if not funded:
                return CrankResult(
                    objective, tuple(effects), VirtualFundWaitingFor.COMPLETE_FUNDING
                )
            effects.extend(sign_postfund(objective.id, objective.outcome, me, channel, signer))
        case SetupStage.POSTFUND_SIGNED:
            pass
        case _:
            assert_never(stage)
    if objective.is_intermediary:
        return CrankResult(objective, tuple(effects), VirtualFundWaitingFor.DONE)
    return CrankResult(objective, tuple(effects), VirtualFundWaitingFor.COMPLETE_POSTFUND)
