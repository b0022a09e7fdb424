"""DirectFund: open a two-party ledger channel funded on chain (PROTOCOL.md §3).

Sign the prefund and send it; wait until the holdings of each asset reach my
deposit threshold (the allocations before mine), deposit up to my target once;
wait until the holdings cover the whole outcome; sign the postfund and send it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

from node.core import (
    FixedPart,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    constants,
    to_checksum_address,
)
from node.core.errors import ProtocolError
from node.protocols._checks import check_crank_inputs, participant_index
from node.protocols._effects import (
    CrankResult,
    Event,
    StateReceived,
    SubmitDeposit,
    TransactionFailed,
    TransactionKind,
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
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._waiting import DirectFundWaitingFor

_PARTICIPANTS = 2


@dataclass(frozen=True)
class DirectFund:
    """A DirectFund objective: its parameters and the progress the log records.

    Attributes:
        fixed: the ledger channel's fixed part.
        outcome: the outcome of the prefund and postfund states.
        my_index: our participant index.
        deposits_submitted: assets whose deposit the log shows as submitted.
    """

    fixed: FixedPart
    outcome: tuple[SingleAssetExit, ...]
    my_index: int
    deposits_submitted: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        assert 0 <= self.my_index < len(self.fixed.participants)
        assert self.deposits_submitted <= {asset_exit.asset for asset_exit in self.outcome}

    @property
    def id(self) -> ObjectiveId:
        """This objective's id."""
        return ObjectiveId(ObjectiveKind.DIRECT_FUND, channel_id(self.fixed))

    @property
    def channel_id(self) -> bytes:
        """The id of the channel being funded."""
        return channel_id(self.fixed)

    def setup_state(self, turn_num: int) -> State:
        """The prefund (turn 0) or postfund (turn 1) state."""
        return setup_state(self.fixed, self.outcome, turn_num)


def funding_thresholds(asset_exit: SingleAssetExit, destination: bytes) -> tuple[int, int]:
    """``(threshold, target)`` for ``destination`` in one asset.

    The threshold is the sum of the allocations before the destination's, the
    holdings at which it is safe to deposit; the target adds its own amount. A
    destination with no allocation has both equal to the asset's total.
    """
    before = 0
    for allocation in asset_exit.allocations:
        if allocation.destination == destination:
            return before, before + allocation.amount
        before += allocation.amount
    return before, before


def new_direct_fund(
    fixed: FixedPart,
    outcome: Sequence[SingleAssetExit],
    my_address: str,
    consensus_app: str,
) -> DirectFund:
    """A DirectFund objective for a ledger channel, checked against the protocol's rules.

    Args:
        fixed: two participants; the app must be the ConsensusApp.
        outcome: one exit per asset, each asset once, simple allocations, each
            destination at most once per asset.
        my_address: our address, a participant.
        consensus_app: the ConsensusApp's address on this chain.

    Raises:
        ProtocolError: a rule above is broken.
    """
    if len(fixed.participants) != _PARTICIPANTS:
        raise ProtocolError(f"participants: {len(fixed.participants)}, a ledger channel has 2")
    if fixed.app_definition != to_checksum_address(consensus_app, "consensus_app"):
        raise ProtocolError(
            f"app_definition: {fixed.app_definition} is not the ConsensusApp {consensus_app}"
        )
    exits = tuple(outcome)
    _check_funding_outcome(exits)
    return DirectFund(fixed, exits, participant_index(fixed, my_address))


def _check_funding_outcome(outcome: tuple[SingleAssetExit, ...]) -> None:
    if not outcome:
        raise ProtocolError("outcome: no asset to fund")
    assets = [asset_exit.asset for asset_exit in outcome]
    if len(set(assets)) != len(assets):
        raise ProtocolError("outcome: an asset appears twice")
    for asset_exit in outcome:
        destinations = [allocation.destination for allocation in asset_exit.allocations]
        if len(set(destinations)) != len(destinations):
            raise ProtocolError(f"outcome[{asset_exit.asset}]: a destination appears twice")
        for allocation in asset_exit.allocations:
            if allocation.allocation_type != constants.allocation_type_simple:
                raise ProtocolError(f"outcome[{asset_exit.asset}]: a guarantee in a new ledger")


def direct_fund_from_prefund(
    event: StateReceived, my_address: str, consensus_app: str
) -> DirectFund:
    """The objective a peer proposes by sending its signed prefund (before approval).

    Raises:
        PeerStateError: the state is not a valid prefund of a ledger channel we are in.
    """
    return from_prefund(
        event,
        lambda fixed, outcome: new_direct_fund(fixed, outcome, my_address, consensus_app),
        update_direct_fund,
    )


def update_direct_fund(objective: DirectFund, event: Event) -> DirectFund:
    """``objective`` after ``event``; a peer's state is only checked (the log keeps it).

    Raises:
        PeerStateError: a peer's state is not this channel's prefund or postfund.
        ProtocolError: a transaction record that does not belong here.
    """
    match event:
        case StateReceived():
            check_setup_state(objective.fixed, objective.outcome, objective.my_index, event)
            return objective
        case TransactionSubmitted():
            asset = _deposit_asset(objective, event)
            return dataclasses.replace(
                objective, deposits_submitted=objective.deposits_submitted | {asset}
            )
        case TransactionFailed():
            asset = _deposit_asset(objective, event)
            return dataclasses.replace(
                objective, deposits_submitted=objective.deposits_submitted - {asset}
            )
        case _:
            assert_never(event)


def _deposit_asset(objective: DirectFund, event: TransactionSubmitted | TransactionFailed) -> str:
    """The asset of a deposit record of this objective.

    Raises:
        ProtocolError: the record is of another channel, not a deposit, or of an
            asset the outcome does not hold.
    """
    if event.channel_id != objective.channel_id or event.kind is not TransactionKind.DEPOSIT:
        raise ProtocolError(f"transaction: {event} is not a deposit of {objective.id}")
    assets = {asset_exit.asset for asset_exit in objective.outcome}
    if event.asset is None or event.asset not in assets:
        raise ProtocolError(f"transaction: asset {event.asset} is not in the outcome")
    return event.asset


def crank_direct_fund(
    objective: DirectFund, snapshot: ChannelSnapshot, signer: Signer
) -> CrankResult[DirectFund]:
    """One step of DirectFund: the effects due now and where it waits.

    Safe to call any number of times: what is done is read from ``snapshot``
    and from the flags the log set, so a repeat asks for the same effects.

    Raises:
        ProtocolError: the snapshot or signer is not this objective's, or the
            channel supports a setup state other than ours.
    """
    check_crank_inputs(objective.fixed, objective.my_index, snapshot, signer)
    me = objective.my_index
    effects, stage = crank_setup(objective.id, objective.outcome, me, snapshot, signer)
    match stage:
        case SetupStage.FUNDED:
            return CrankResult(objective, (), DirectFundWaitingFor.DONE)
        case SetupStage.PREFUND:
            return CrankResult(objective, tuple(effects), DirectFundWaitingFor.COMPLETE_PREFUND)
        case SetupStage.FUNDING:
            deposits, waiting_for = _funding_step(objective, snapshot)
            if waiting_for is not None:
                return CrankResult(objective, (*effects, *deposits), waiting_for)
            effects.extend(sign_postfund(objective.id, objective.outcome, me, snapshot, signer))
        case SetupStage.POSTFUND_SIGNED:
            pass
        case _:
            assert_never(stage)
    return CrankResult(objective, tuple(effects), DirectFundWaitingFor.COMPLETE_POSTFUND)


def _funding_step(
    objective: DirectFund, snapshot: ChannelSnapshot
) -> tuple[tuple[SubmitDeposit, ...], DirectFundWaitingFor | None]:
    """Deposits due now and the funding pause point, or None once fully funded."""
    destination = address_to_destination(objective.fixed.participants[objective.my_index])
    deposits: list[SubmitDeposit] = []
    before_my_turn = False
    funded = True
    for asset_exit in objective.outcome:
        held = snapshot.holding(asset_exit.asset)
        total = sum(allocation.amount for allocation in asset_exit.allocations)
        funded = funded and held >= total
        threshold, target = funding_thresholds(asset_exit, destination)
        if held >= target or asset_exit.asset in objective.deposits_submitted:
            continue
        if held < threshold:
            before_my_turn = True
            continue
        deposits.append(SubmitDeposit(objective.channel_id, asset_exit.asset, held, target - held))
    if funded:
        assert not deposits
        return (), None
    if before_my_turn:
        return tuple(deposits), DirectFundWaitingFor.MY_TURN_TO_FUND
    return tuple(deposits), DirectFundWaitingFor.COMPLETE_FUNDING
