"""Settle: enforce on chain what we hold in a ledger channel and every channel it funds.

A participant of a virtual channel whose other parties stopped answering settles
the ledger channel it shares with its neighbour on the path (PROTOCOL.md §3, §4):

1. each channel the ledger guarantees is concluded with a final state everyone
   signed, or else challenged with the best state we hold (the payee: the
   redemption state carrying its largest voucher);
2. the ledger is challenged with its latest supported state;
3. once all of them have finalized, each guarantee is reclaimed into the ledger,
   in the ledger's order, and the ledger is paid out.

Progress is read from what the derivation module folds of confirmed chain events
(registered challenges, conclusions, reclaims, holdings) and the chain's time; the
log says which transactions were sent, so none is sent twice while it is pending.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from node.core import (
    FixedPart,
    Signer,
    SingleAssetExit,
    State,
    Voucher,
    channel_id,
    constants,
    state_hash,
)
from node.core.errors import ProtocolError
from node.protocols._checks import check_crank_inputs, participant_index
from node.protocols._dispute import (
    funding_ledger,
    ledger_payout,
    virtual_challenge,
    virtual_conclusion,
)
from node.protocols._effects import (
    CrankResult,
    Effect,
    Event,
    RecordSignedState,
    SubmitChallenge,
    SubmitConclude,
    SubmitReclaim,
    SubmitTransfer,
    TransactionKind,
    update_submitted,
)
from node.protocols._ids import ObjectiveId, ObjectiveKind
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._view import ObjectiveView
from node.protocols._waiting import SettleWaitingFor

_ZERO_HASH = bytes(constants.bytes32_bytes)


@dataclass(frozen=True)
class Settle:
    """A settlement on chain through one of our ledger channels.

    Attributes:
        channel_id: the channel whose settlement was asked for: a payment channel the
            ledger funds, or the ledger itself (a unilateral exit).
        ledger: the fixed part of our ledger channel that funds it.
        my_index: our index among the ledger's participants.
        submitted: ``(kind, channel)`` of the transactions the log shows as sent
            and not refused (a reclaim is keyed by its target).
    """

    channel_id: bytes
    ledger: FixedPart
    my_index: int
    submitted: frozenset[tuple[TransactionKind, bytes]] = frozenset()

    def __post_init__(self) -> None:
        assert 0 <= self.my_index < len(self.ledger.participants)
        assert len(self.channel_id) == constants.bytes32_bytes

    @property
    def id(self) -> ObjectiveId:
        """This objective's id: one settlement per ledger, whichever channel asked for it."""
        return ObjectiveId(ObjectiveKind.SETTLE, self.ledger_id)

    @property
    def fixed(self) -> FixedPart:
        """The channel this objective cranks on: the ledger."""
        return self.ledger

    @property
    def ledger_id(self) -> bytes:
        """The ledger channel's id."""
        return channel_id(self.ledger)


def new_settle(
    channel: ChannelSnapshot,
    me: str,
    ledgers: Iterable[ChannelSnapshot],
    chosen: bytes | None = None,
) -> Settle:
    """The settlement of virtual channel ``channel`` through our ledger that funds it.

    Args:
        channel: the virtual channel.
        me: our address.
        ledgers: our ledger channels.
        chosen: which ledger next to us on the path (default: the one toward the
            payer; for the payer, the one toward the payee).

    Raises:
        ProtocolError: we are not a participant, or no ledger of ours funds the channel.
    """
    participant_index(channel.fixed, me)
    if channel.supported is None:
        raise ProtocolError(
            f"channel 0x{channel.channel_id.hex()}: nothing to enforce, no state signed by"
            " every participant"
        )
    funding = funding_ledger(channel.fixed, me, ledgers, chosen)
    return Settle(channel.channel_id, funding.supported.state.fixed, funding.my_index)


def settle_ledger(ledger: ChannelSnapshot, me: str) -> Settle:
    """The unilateral exit of our ledger ``ledger``: challenge it with its latest
    supported state, enforce every channel it guarantees, reclaim, pay out.

    Raises:
        ProtocolError: we are not a participant, or no state of the ledger is supported.
    """
    my_index = participant_index(ledger.fixed, me)
    if ledger.supported is None:
        raise ProtocolError(f"ledger 0x{ledger.channel_id.hex()}: nothing to enforce yet")
    return Settle(ledger.channel_id, ledger.fixed, my_index)


def update_settle(objective: Settle, event: Event) -> Settle:
    """``objective`` after a transaction record of its own.

    Raises:
        ProtocolError: a state from a peer (a settlement takes none).
    """
    return update_submitted(objective, event)


def settled_ledger_state(ledger: ChannelSnapshot) -> State:
    """The ledger state a settlement enforces: the one a challenge registered, else the
    latest supported one.

    Raises:
        ProtocolError: no state of the ledger is supported.
    """
    if ledger.challenge is not None:
        return ledger.challenge.state
    if ledger.supported is None:
        raise ProtocolError(f"ledger 0x{ledger.channel_id.hex()}: no supported state")
    return ledger.supported.state


def guaranteed_targets(state: State) -> list[bytes]:
    """The channels a ledger state guarantees, in allocation order."""
    kind = constants.allocation_type_guarantee
    return [
        allocation.destination
        for asset_exit in state.outcome
        for allocation in asset_exit.allocations
        if allocation.allocation_type == kind
    ]


def crank_settle(objective: Settle, view: ObjectiveView, signer: Signer) -> CrankResult[Settle]:
    """One step of a settlement: the transactions due now and where it waits.

    Raises:
        ProtocolError: the view or signer is not this objective's; the ledger
            guarantees a channel this node does not know (it cannot be enforced);
            or a channel finalized with a state this node does not know.
    """
    ledger = view.channel
    check_crank_inputs(objective.ledger, objective.my_index, ledger, signer)
    now = view.chain_time_s
    if ledger.finalized(now) and ledger.paid_out:
        return CrankResult(objective, (), SettleWaitingFor.DONE)
    targets = guaranteed_targets(settled_ledger_state(ledger))
    effects: list[Effect] = []
    registered = True
    for target in targets:
        channel = view.guaranteed.get(target)
        if channel is None:
            raise ProtocolError(
                f"ledger 0x{ledger.channel_id.hex()} guarantees 0x{target.hex()}, a channel"
                " this node does not know: it cannot be enforced"
            )
        asked, done = _enforce_channel(objective, channel, view.vouchers.get(target), signer, now)
        effects.extend(asked)
        registered = registered and done
    asked, done = _enforce_ledger(objective, ledger, signer, now)
    effects.extend(asked)
    if not (registered and done):
        return CrankResult(objective, tuple(effects), SettleWaitingFor.CHALLENGES)
    channels = [ledger, *(view.guaranteed[target] for target in targets)]
    if not all(channel.finalized(now) for channel in channels):
        return CrankResult(objective, tuple(effects), SettleWaitingFor.FINALIZATION)
    payout, waiting_for = _payout(objective, view)
    return CrankResult(objective, (*effects, *payout), waiting_for)


def _enforce_channel(
    objective: Settle,
    channel: ChannelSnapshot,
    largest: Voucher | None,
    signer: Signer,
    now: int,
) -> tuple[list[Effect], bool]:
    """What registers our best state of a guaranteed channel, and whether it is registered."""
    if channel.finalized(now):
        return [], True
    final = virtual_conclusion(channel, signer.address)
    if final is not None:
        if channel.concluded:
            return [], True
        if (TransactionKind.CONCLUDE, channel.channel_id) in objective.submitted:
            return [], False
        return [SubmitConclude(final)], False
    challenge = virtual_challenge(channel, signer, largest)
    candidate = challenge.candidate
    registered = channel.challenge
    if (
        registered is not None
        and channel.finalizes_at != 0
        and registered.state.turn_num >= candidate.state.turn_num
    ):
        return [], True
    if (TransactionKind.CHALLENGE, channel.channel_id) in objective.submitted:
        return [], False
    effects: list[Effect] = []
    me = channel.fixed.participants.index(signer.address)
    latest = channel.latest_signed_by(me)
    if candidate.state.turn_num > constants.postfund_turn_num and (
        latest is None or latest.state != candidate.state
    ):
        # Our signature on the redemption state is logged before it leaves.
        effects.append(RecordSignedState(candidate))
    effects.append(challenge)
    return effects, False


def _enforce_ledger(
    objective: Settle, ledger: ChannelSnapshot, signer: Signer, now: int
) -> tuple[list[Effect], bool]:
    """The ledger's challenge with its latest supported state, unless one as high is registered."""
    if ledger.finalized(now):
        return [], True
    supported = ledger.supported
    if supported is None or supported.state.is_final:
        raise ProtocolError(f"ledger 0x{ledger.channel_id.hex()}: no state to challenge with")
    registered = ledger.challenge
    if (
        registered is not None
        and ledger.finalizes_at != 0
        and registered.state.turn_num >= supported.state.turn_num
    ):
        return [], True
    if (TransactionKind.CHALLENGE, ledger.channel_id) in objective.submitted:
        return [], False
    signature = signer.sign_challenge(supported.state)
    return [SubmitChallenge(supported, (), signature)], False


def finalized_outcome(channel: ChannelSnapshot) -> tuple[bytes, tuple[SingleAssetExit, ...]]:
    """The state hash a finalized channel's status records and the outcome it pays.

    Raises:
        ProtocolError: it finalized with a state this node does not know.
    """
    if channel.concluded and channel.supported is not None and channel.supported.state.is_final:
        return _ZERO_HASH, channel.supported.state.outcome
    if channel.challenge is not None:
        return state_hash(channel.challenge.state), channel.challenge.state.outcome
    raise ProtocolError(
        f"channel 0x{channel.channel_id.hex()} finalized with a state this node does not know"
    )


def _payout(objective: Settle, view: ObjectiveView) -> tuple[list[Effect], SettleWaitingFor]:
    """The next reclaim, or the payout once every guarantee is reclaimed."""
    ledger = view.channel
    state = settled_ledger_state(ledger)
    finalized = {
        target: finalized_outcome(view.guaranteed[target]) for target in guaranteed_targets(state)
    }
    outcomes = {target: outcome for target, (_, outcome) in finalized.items()}
    payout = ledger_payout(state, objective.my_index, outcomes)
    stage = ledger.reclaims
    if stage < len(payout.reclaims):
        target, index, source = payout.reclaims[stage]
        if (TransactionKind.RECLAIM, target) in objective.submitted:
            return [], SettleWaitingFor.RECLAIM
        target_hash, target_outcome = finalized[target]
        reclaim = SubmitReclaim(
            ledger.channel_id, target, state_hash(state), source, index, target_hash, target_outcome
        )
        return [reclaim], SettleWaitingFor.RECLAIM
    if (TransactionKind.TRANSFER, ledger.channel_id) in objective.submitted:
        return [], SettleWaitingFor.PAYOUT
    return [SubmitTransfer(ledger.channel_id, state_hash(state), payout.reclaimed)], (
        SettleWaitingFor.PAYOUT
    )


def settlement_amounts(objective: Settle, view: ObjectiveView) -> tuple[int | None, int | None]:
    """What the asked channel's finalized outcome pays its payee, and what the ledger pays
    us (None while not finalized, or not known)."""
    now = view.chain_time_s
    channel = view.guaranteed.get(objective.channel_id)
    paid = None
    outcomes: dict[bytes, tuple[SingleAssetExit, ...]] = {}
    try:
        for target, snapshot in view.guaranteed.items():
            if snapshot.finalized(now):
                outcomes[target] = finalized_outcome(snapshot)[1]
        if channel is not None and objective.channel_id in outcomes:
            paid = outcomes[objective.channel_id][0].allocations[1].amount
        if not view.channel.finalized(now):
            return paid, None
        state = settled_ledger_state(view.channel)
        return paid, ledger_payout(state, objective.my_index, outcomes).payout
    except ProtocolError:
        return paid, None
