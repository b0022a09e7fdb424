"""VirtualDefund: close a virtual channel and release its guarantees (PROTOCOL.md §3).

Alice (the payer) signs the final state: turn 2, final, her allocation minus
what her vouchers paid and Bob's plus it. Everyone checks it (Bob: it pays
him at least his largest voucher) and signs; then each ledger on the path
removes the guarantee (its leader proposes ``Remove``, left getting Alice's
final amount; its follower countersigns) and the objective is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from node.core import (
    Allocation,
    FixedPart,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    constants,
)
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols._checks import (
    check_crank_inputs,
    check_expected_state,
    check_peer_state,
    participant_index,
    sign_and_send,
)
from node.protocols._effects import (
    CrankResult,
    Effect,
    Event,
    StateReceived,
    TransactionFailed,
    TransactionSubmitted,
)
from node.protocols._ids import ObjectiveId, ObjectiveKind
from node.protocols._proposals import Remove
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._view import ObjectiveView
from node.protocols._virtual import (
    VirtualAmounts,
    ledger_step,
    neighbour_ledgers,
    virtual_amounts,
)
from node.protocols._waiting import VirtualDefundWaitingFor

# Prefund 0, postfund 1, then the final state.
FINAL_TURN_NUM = 2
_PAYER_INDEX = 0


@dataclass(frozen=True)
class VirtualDefund:
    """A VirtualDefund objective.

    Attributes:
        final_state: the final state every participant signs.
        my_index: our participant index.
    """

    final_state: State
    my_index: int

    def __post_init__(self) -> None:
        assert self.final_state.is_final
        assert self.final_state.turn_num == FINAL_TURN_NUM
        assert 0 <= self.my_index < len(self.final_state.fixed.participants)

    @property
    def fixed(self) -> FixedPart:
        """The virtual channel's fixed part."""
        return self.final_state.fixed

    @property
    def id(self) -> ObjectiveId:
        """This objective's id."""
        return ObjectiveId(ObjectiveKind.VIRTUAL_DEFUND, channel_id(self.fixed))

    @property
    def channel_id(self) -> bytes:
        """The id of the virtual channel being closed."""
        return channel_id(self.fixed)

    @property
    def final_amounts(self) -> VirtualAmounts:
        """The asset and the payer's and payee's final allocations."""
        return virtual_amounts(self.fixed, self.final_state.outcome)


def _postfund_amounts(snapshot: ChannelSnapshot) -> VirtualAmounts:
    """The amounts of the channel's supported postfund: the channel must be open.

    Raises:
        ProtocolError: the supported state is missing or not the postfund.
    """
    supported = snapshot.supported
    if supported is None or supported.state.turn_num != constants.postfund_turn_num:
        raise ProtocolError(
            f"supported: channel 0x{snapshot.channel_id.hex()} is not open (no postfund)"
        )
    return virtual_amounts(snapshot.fixed, supported.state.outcome)


def final_state_for(snapshot: ChannelSnapshot, paid: int) -> State:
    """The final state that moves ``paid`` from Alice to Bob in the supported postfund.

    Raises:
        ProtocolError: the channel is not open, or ``paid`` is not in [0, Alice's funds].
    """
    amounts = _postfund_amounts(snapshot)
    if type(paid) is not int or not 0 <= paid <= amounts.payer:
        raise ProtocolError(f"paid: {paid!r} is not in [0, {amounts.payer}]")
    fixed = snapshot.fixed
    allocations = [
        Allocation(address_to_destination(fixed.participants[0]), amounts.payer - paid),
        Allocation(address_to_destination(fixed.participants[-1]), amounts.payee + paid),
    ]
    outcome = (SingleAssetExit(amounts.asset, allocations),)
    return State(fixed, b"", outcome, FINAL_TURN_NUM, True)


def new_virtual_defund(snapshot: ChannelSnapshot, my_address: str, paid: int) -> VirtualDefund:
    """Alice's VirtualDefund: close the open channel in ``snapshot`` having paid ``paid``.

    Raises:
        ProtocolError: we are not the payer, the channel is not open, or
            ``paid`` is not in [0, our funds].
    """
    my_index = participant_index(snapshot.fixed, my_address)
    if my_index != _PAYER_INDEX:
        raise ProtocolError(f"{my_address} is not the payer: the payer signs the final state")
    return VirtualDefund(final_state_for(snapshot, paid), my_index)


def virtual_defund_from_final(
    snapshot: ChannelSnapshot,
    my_address: str,
    event: StateReceived,
    largest_voucher: int = 0,
) -> VirtualDefund:
    """The objective Alice proposes by sending her signed final state (before approval).

    Args:
        snapshot: the virtual channel, open (its postfund supported).
        my_address: our address, a participant other than Alice.
        event: Alice's final state.
        largest_voucher: Bob: the amount of the largest voucher he accepted;
            intermediaries: 0.

    Raises:
        PeerStateError: the state is not signed by Alice, not final at turn 2,
            does not move funds only from Alice to Bob (MALFORMED), or pays Bob
            less than his largest voucher (STALE_VOUCHER).
        ProtocolError: the channel is not open.
    """
    state = event.signed_state.state
    if _PAYER_INDEX not in event.signed_state.signer_indices:
        raise PeerStateError(
            PeerFault.MALFORMED, "the payer's signature is missing from the final state"
        )
    if not state.is_final or state.turn_num != FINAL_TURN_NUM:
        raise PeerStateError(
            PeerFault.WRONG_TURN,
            f"turn_num {state.turn_num}, is_final {state.is_final}: expected a final turn 2",
        )
    postfund = _postfund_amounts(snapshot)
    try:
        final = virtual_amounts(snapshot.fixed, state.outcome)
    except ProtocolError as error:
        raise PeerStateError(PeerFault.MALFORMED, str(error)) from error
    paid = postfund.payer - final.payer
    if final.asset != postfund.asset or paid < 0 or final.payee != postfund.payee + paid:
        raise PeerStateError(
            PeerFault.MALFORMED, "outcome: the final state must only move funds to the payee"
        )
    objective = VirtualDefund(
        final_state_for(snapshot, paid), participant_index(state.fixed, my_address)
    )
    if objective.my_index == len(state.fixed.participants) - 1 and paid < largest_voucher:
        raise PeerStateError(
            PeerFault.STALE_VOUCHER,
            f"the final state pays {paid}, less than the largest voucher {largest_voucher}",
        )
    return update_virtual_defund(objective, event)


def update_virtual_defund(objective: VirtualDefund, event: Event) -> VirtualDefund:
    """``objective`` after ``event``; a peer's state is only checked (the log keeps it).

    Raises:
        PeerStateError: a peer's state is not this objective's final state.
        ProtocolError: a transaction record (VirtualDefund submits none).
    """
    match event:
        case StateReceived():
            check_peer_state(objective.fixed, objective.my_index, event)
            check_expected_state(event.signed_state.state, objective.final_state)
            return objective
        case TransactionSubmitted() | TransactionFailed():
            raise ProtocolError(f"transaction: {objective.id} submits no transaction")
        case _:
            assert_never(event)


def crank_virtual_defund(
    objective: VirtualDefund, view: ObjectiveView, signer: Signer
) -> CrankResult[VirtualDefund]:
    """One step of VirtualDefund: the effects due now and where it waits.

    Raises:
        ProtocolError: the view or signer is not this objective's, or a ledger
            next to us is missing or holds another guarantee for the channel.
    """
    channel = view.channel
    check_crank_inputs(objective.fixed, objective.my_index, channel, signer)
    me = objective.my_index
    final = objective.final_state
    effects: list[Effect] = []
    latest = channel.latest_signed_by(me)
    if latest is None or latest.state != final:
        effects.extend(sign_and_send(objective.id, me, final, channel, signer))
    supported = channel.supported
    if supported is None or supported.state != final:
        return CrankResult(objective, tuple(effects), VirtualDefundWaitingFor.FINALIZATION)
    amounts = objective.final_amounts
    released = True
    for _, ledger in neighbour_ledgers(objective.fixed, me, amounts.asset, view):
        asked, done = ledger_step(ledger, Remove(objective.channel_id, amounts.payer))
        effects.extend(asked)
        released = released and done
    if not released:
        return CrankResult(objective, tuple(effects), VirtualDefundWaitingFor.DEFUNDING)
    return CrankResult(objective, tuple(effects), VirtualDefundWaitingFor.DONE)
