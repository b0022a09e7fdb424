"""Checks and steps shared by the objectives."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from node.core import (
    FixedPart,
    InvalidSignatureError,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    channel_id,
    constants,
    recover_state_signer,
)
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols._effects import SendSignedState, StateReceived
from node.protocols._ids import ObjectiveId
from node.protocols._snapshot import ChannelSnapshot

_Objective = TypeVar("_Objective")


def objective_from_prefund(
    event: StateReceived, build: Callable[[FixedPart, Sequence[SingleAssetExit]], _Objective]
) -> _Objective:
    """The objective a peer's signed prefund proposes, built by ``build`` (before approval).

    Raises:
        PeerStateError: the state is not a prefund, or ``build`` refuses it.
    """
    state = event.signed_state.state
    if state.turn_num != constants.prefund_turn_num:
        raise PeerStateError(
            PeerFault.WRONG_TURN, f"turn_num {state.turn_num}: a new channel starts at 0"
        )
    try:
        return build(state.fixed, state.outcome)
    except ProtocolError as error:
        raise PeerStateError(PeerFault.MALFORMED, str(error)) from error


def participant_index(fixed: FixedPart, address: str) -> int:
    """The index of ``address`` among the channel's participants.

    Raises:
        ProtocolError: ``address`` is not a participant.
    """
    if address not in fixed.participants:
        raise ProtocolError(
            f"participants: {address} is not a participant of 0x{channel_id(fixed).hex()}"
        )
    return fixed.participants.index(address)


def check_crank_inputs(
    fixed: FixedPart, my_index: int, snapshot: ChannelSnapshot, signer: Signer
) -> None:
    """The engine hands a crank the snapshot of the objective's channel and our own key.

    Raises:
        ProtocolError: the snapshot is of another channel, or the signer is not us.
    """
    if snapshot.fixed != fixed:
        raise ProtocolError(
            f"snapshot: channel 0x{snapshot.channel_id.hex()} is not the objective's"
            f" 0x{channel_id(fixed).hex()}"
        )
    if signer.address != fixed.participants[my_index]:
        raise ProtocolError(
            f"signer: {signer.address} is not participant {my_index}"
            f" ({fixed.participants[my_index]})"
        )


def check_peer_state(fixed: FixedPart, my_index: int, event: StateReceived) -> None:
    """A state a peer sent: of this channel, from another participant who signed it,
    every signature by the participant at its index.

    Raises:
        PeerStateError: the state breaks one of those rules; ``fault`` says which.
    """
    state = event.signed_state.state
    if state.fixed != fixed:
        raise PeerStateError(
            PeerFault.UNKNOWN_CHANNEL,
            f"state of channel 0x{channel_id(state.fixed).hex()},"
            f" expected 0x{channel_id(fixed).hex()}",
        )
    participants = fixed.participants
    if event.sender not in participants:
        raise PeerStateError(
            PeerFault.NOT_A_PARTICIPANT, f"sender {event.sender} is not a participant"
        )
    if event.sender == participants[my_index]:
        raise PeerStateError(PeerFault.MALFORMED, f"sender {event.sender} is this node")
    for index, signature in event.signed_state.signatures:
        try:
            signer = recover_state_signer(state, signature)
        except InvalidSignatureError as error:
            raise PeerStateError(
                PeerFault.BAD_SIGNATURE, f"signatures[{index}]: {error}"
            ) from error
        if signer not in participants:
            raise PeerStateError(
                PeerFault.NOT_A_PARTICIPANT, f"signatures[{index}]: by non-participant {signer}"
            )
        if signer != participants[index]:
            raise PeerStateError(
                PeerFault.BAD_SIGNATURE,
                f"signatures[{index}]: by {signer}, who is participant"
                f" {participants.index(signer)}",
            )
    if participants.index(event.sender) not in event.signed_state.signer_indices:
        raise PeerStateError(
            PeerFault.MALFORMED, f"sender {event.sender} did not sign the state it sent"
        )


def check_expected_state(received: State, expected: State) -> None:
    """A peer's state must be exactly the one the protocol expects at its turn.

    Raises:
        PeerStateError: another turn (WRONG_TURN) or another content (MALFORMED).
    """
    if received.turn_num != expected.turn_num:
        raise PeerStateError(
            PeerFault.WRONG_TURN, f"turn_num {received.turn_num}, expected {expected.turn_num}"
        )
    for name in ("is_final", "app_data", "outcome"):
        if getattr(received, name) != getattr(expected, name):
            raise PeerStateError(
                PeerFault.MALFORMED, f"{name} of turn {received.turn_num} is not the expected one"
            )


def has_signed_turn(snapshot: ChannelSnapshot, index: int, turn_num: int) -> bool:
    """Whether participant ``index`` has signed a state of at least ``turn_num``."""
    latest = snapshot.latest_signed_by(index)
    return latest is not None and latest.state.turn_num >= turn_num


def sign_and_send(
    objective_id: ObjectiveId,
    my_index: int,
    state: State,
    snapshot: ChannelSnapshot,
    signer: Signer,
) -> tuple[SendSignedState, ...]:
    """Sign ``state`` and send it to every other participant, with the signatures known on it.

    Signing is deterministic, so a repeated crank asks for the very same message.
    """
    signed = SignedState(state)
    for latest in snapshot.latest_signed:
        if latest is not None and latest.state == state:
            for index, signature in latest.signatures:
                signed = signed.with_signature(index, signature)
    signed = signed.with_signature(my_index, signer.sign_state(state))
    participants = state.fixed.participants
    return tuple(
        SendSignedState(participants[index], objective_id, signed)
        for index in range(len(participants))
        if index != my_index
    )
