"""Defend: answer a stale challenge of a channel we are in, before it expires.

A participant who challenges with a state older than the latest one everyone
signed tries to take back what it gave. The adjudicator lets anyone holding a
newer supported state clear such a challenge with ``checkpoint``; this objective
does so with the channel's latest supported state and is done once the chain
shows the challenge cleared (or it finalized: then there is nothing left to do
here, and a settlement pays out what the chain decided).
"""

from __future__ import annotations

from dataclasses import dataclass

from node.core import FixedPart, Signer, channel_id
from node.protocols._checks import check_crank_inputs, participant_index
from node.protocols._effects import (
    CrankResult,
    Effect,
    Event,
    SubmitCheckpoint,
    TransactionKind,
    update_submitted,
)
from node.protocols._ids import ObjectiveId, ObjectiveKind
from node.protocols._snapshot import ChannelSnapshot
from node.protocols._view import ObjectiveView
from node.protocols._waiting import DefendWaitingFor


@dataclass(frozen=True)
class Defend:
    """The defence of one channel against a stale challenge.

    Attributes:
        fixed: the challenged channel's fixed part.
        my_index: our participant index.
        submitted: ``(kind, channel)`` of the transactions the log shows as sent and
            not refused.
    """

    fixed: FixedPart
    my_index: int
    submitted: frozenset[tuple[TransactionKind, bytes]] = frozenset()

    def __post_init__(self) -> None:
        assert 0 <= self.my_index < len(self.fixed.participants)

    @property
    def id(self) -> ObjectiveId:
        """This objective's id."""
        return ObjectiveId(ObjectiveKind.DEFEND, channel_id(self.fixed))

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.fixed)


def is_stale_challenge(snapshot: ChannelSnapshot, challenged_turn: int) -> bool:
    """Whether a challenge with a state of ``challenged_turn`` can be cleared with the
    channel's latest supported state (a later turn everyone signed)."""
    supported = snapshot.supported
    return supported is not None and supported.state.turn_num > challenged_turn


def new_defend(snapshot: ChannelSnapshot, me: str) -> Defend:
    """The defence of ``snapshot``'s channel by ``me``.

    Raises:
        ProtocolError: we are not a participant.
    """
    return Defend(snapshot.fixed, participant_index(snapshot.fixed, me))


def update_defend(objective: Defend, event: Event) -> Defend:
    """``objective`` after a transaction record of its own.

    Raises:
        ProtocolError: a state from a peer (a defence takes none).
    """
    return update_submitted(objective, event)


def crank_defend(objective: Defend, view: ObjectiveView, signer: Signer) -> CrankResult[Defend]:
    """One step of a defence: the checkpoint due now, or done.

    Raises:
        ProtocolError: the view or signer is not this objective's.
    """
    channel = view.channel
    check_crank_inputs(objective.fixed, objective.my_index, channel, signer)
    challenge = channel.challenge
    if challenge is None or channel.finalizes_at == 0 or channel.concluded:
        return CrankResult(objective, (), DefendWaitingFor.DONE)  # cleared: defended
    if channel.finalized(view.chain_time_s):
        return CrankResult(objective, (), DefendWaitingFor.DONE)  # the chain has decided
    supported = channel.supported
    if not is_stale_challenge(channel, challenge.state.turn_num):
        return CrankResult(objective, (), DefendWaitingFor.DONE)  # nothing newer to show
    assert supported is not None
    effects: list[Effect] = []
    if (TransactionKind.CHECKPOINT, objective.channel_id) not in objective.submitted:
        effects.append(SubmitCheckpoint(supported, ()))
    return CrankResult(objective, tuple(effects), DefendWaitingFor.CLEARED)
