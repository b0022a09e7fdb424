"""DirectDefund: close a ledger channel and pay out its holdings (PROTOCOL.md §3).

Sign the final state (the supported outcome, turn + 1, final) and send it;
once every participant signed it, participant 0 submits
``concludeAndTransferAllAssets``; everyone waits until the holdings are zero.

A close races a settlement: a participant may challenge the ledger on chain while
another asks to close it. Once a challenge has finalized the channel, no final state
can conclude it any more (the adjudicator pays out the challenge's state, through the
settlement), so the close fails rather than wait for a signature that cannot help.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import assert_never

from node.core import FixedPart, Signer, State, channel_id, constants
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
    SubmitConcludeAndTransfer,
    TransactionFailed,
    TransactionKind,
    TransactionSubmitted,
)
from node.protocols._ids import ObjectiveId, ObjectiveKind
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._waiting import DirectDefundWaitingFor

# The participant who submits the conclusion; the others only watch the chain.
_CONCLUDER_INDEX = 0


@dataclass(frozen=True)
class DirectDefund:
    """A DirectDefund objective.

    Attributes:
        final_state: the final state every participant signs.
        my_index: our participant index.
        conclude_submitted: the log shows the conclusion was submitted.
    """

    final_state: State
    my_index: int
    conclude_submitted: bool = False

    def __post_init__(self) -> None:
        assert self.final_state.is_final
        assert 0 <= self.my_index < len(self.final_state.fixed.participants)

    @property
    def fixed(self) -> FixedPart:
        """The channel's fixed part."""
        return self.final_state.fixed

    @property
    def id(self) -> ObjectiveId:
        """This objective's id."""
        return ObjectiveId(ObjectiveKind.DIRECT_DEFUND, channel_id(self.fixed))

    @property
    def channel_id(self) -> bytes:
        """The id of the channel being closed."""
        return channel_id(self.fixed)


def new_direct_defund(snapshot: ChannelSnapshot, my_address: str) -> DirectDefund:
    """A DirectDefund objective for the channel in ``snapshot``.

    The final state is the supported state made final at the next turn, or the
    supported state itself if it is final already, so rebuilding the objective
    from a later snapshot (after a restart) yields the same one.

    Raises:
        ProtocolError: we are not a participant, no state is supported, or the
            supported outcome still holds guarantees (close those first).
    """
    my_index = participant_index(snapshot.fixed, my_address)
    supported = snapshot.supported
    if supported is None:
        raise ProtocolError(
            f"supported: channel 0x{snapshot.channel_id.hex()} has no supported state to close"
        )
    guarantees = [
        allocation.destination.hex()
        for asset_exit in supported.state.outcome
        for allocation in asset_exit.allocations
        if allocation.allocation_type == constants.allocation_type_guarantee
    ]
    if guarantees:
        raise ProtocolError(
            f"outcome: channel 0x{snapshot.channel_id.hex()} still guarantees"
            f" {len(guarantees)} channel(s) (0x{', 0x'.join(guarantees)}): defund those first"
        )
    state = supported.state
    if state.is_final:
        return DirectDefund(state, my_index)
    final = State(state.fixed, state.app_data, state.outcome, state.turn_num + 1, True)
    return DirectDefund(final, my_index)


def direct_defund_from_final(
    snapshot: ChannelSnapshot, my_address: str, event: StateReceived
) -> DirectDefund:
    """The objective a peer proposes by sending its signed final state (before approval).

    Raises:
        PeerStateError: the state is not the final state of the channel's supported one.
        ProtocolError: the channel cannot be defunded (see ``new_direct_defund``).
    """
    if not event.signed_state.state.is_final:
        raise PeerStateError(PeerFault.MALFORMED, "is_final: a defund starts with a final state")
    return update_direct_defund(new_direct_defund(snapshot, my_address), event)


def update_direct_defund(objective: DirectDefund, event: Event) -> DirectDefund:
    """``objective`` after ``event``; a peer's state is only checked (the log keeps it).

    Raises:
        PeerStateError: a peer's state is not this objective's final state.
        ProtocolError: a transaction record that does not belong here.
    """
    match event:
        case StateReceived():
            check_peer_state(objective.fixed, objective.my_index, event)
            check_expected_state(event.signed_state.state, objective.final_state)
            return objective
        case TransactionSubmitted() | TransactionFailed():
            if (
                event.channel_id != objective.channel_id
                or event.kind is not TransactionKind.CONCLUDE_AND_TRANSFER
            ):
                raise ProtocolError(f"transaction: {event} is not a conclusion of {objective.id}")
            submitted = isinstance(event, TransactionSubmitted)
            return dataclasses.replace(objective, conclude_submitted=submitted)
        case _:
            assert_never(event)


def crank_direct_defund(
    objective: DirectDefund, snapshot: ChannelSnapshot, signer: Signer, chain_time_s: int = 0
) -> CrankResult[DirectDefund]:
    """One step of DirectDefund: the effects due now and where it waits.

    Args:
        chain_time_s: the timestamp of the latest block the chain watcher reported.

    Raises:
        ProtocolError: the snapshot or signer is not this objective's; or the channel
            finalized on chain other than by concluding with this final state (a
            challenge), so that it can no longer close this way.
    """
    check_crank_inputs(objective.fixed, objective.my_index, snapshot, signer)
    me = objective.my_index
    final = objective.final_state
    concluded = _concluded_with(snapshot, final, me)
    if snapshot.finalized(chain_time_s) and not concluded:
        raise ProtocolError(
            f"finalized: channel 0x{snapshot.channel_id.hex()} finalized on chain through a"
            " challenge: its settlement pays it out"
        )
    paid_out = all(amount == 0 for _, amount in snapshot.holdings)
    if concluded and paid_out:
        # Concluded and paid out, perhaps before the others' signatures reached us.
        return CrankResult(objective, (), DirectDefundWaitingFor.DONE)
    effects: list[Effect] = []
    latest = snapshot.latest_signed_by(me)
    if latest is None or latest.state != final:
        effects.extend(sign_and_send(objective.id, me, final, snapshot, signer))
    supported = snapshot.supported
    if supported is None or supported.state != final:
        return CrankResult(objective, tuple(effects), DirectDefundWaitingFor.FINALIZATION)
    if paid_out:
        return CrankResult(objective, tuple(effects), DirectDefundWaitingFor.DONE)
    if me == _CONCLUDER_INDEX and not objective.conclude_submitted:
        effects.append(SubmitConcludeAndTransfer(supported))
    return CrankResult(objective, tuple(effects), DirectDefundWaitingFor.WITHDRAW)


def _concluded_with(snapshot: ChannelSnapshot, final: State, me: int) -> bool:
    """Whether the channel was concluded on chain with ``final`` (the adjudicator keeps
    only a conclusion's time, and pays out what every party signed). A conclusion
    needs every participant's signature on a final state, and ``final`` is the only
    final state we sign for the channel: once we signed it, a conclusion is with it,
    even while the others' signatures on it are still on their way to us (the one
    who concluded crashed after it sent the transaction, say)."""
    if not snapshot.concluded:
        return False
    supported = snapshot.supported
    if supported is not None and supported.state == final:
        return True
    latest = snapshot.latest_signed_by(me)
    return latest is not None and latest.state == final
