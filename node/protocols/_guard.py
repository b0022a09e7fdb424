"""Guard: a watchtower answers a stale challenge of a client's channel while the client
is offline (what the client hands over: ``node.protocols._watch``).

The tower only submits what the client signed (a checkpoint with the latest state
every participant signed, or the client's counter-challenge) and pays the gas from
its own chain key.
"""

from __future__ import annotations

from dataclasses import dataclass

from node.core import FixedPart, channel_id
from node.core.errors import ProtocolError
from node.protocols._effects import (
    CrankResult,
    Effect,
    Event,
    SubmitChallenge,
    SubmitCheckpoint,
    TransactionKind,
    update_submitted,
)
from node.protocols._ids import ObjectiveId, ObjectiveKind
from node.protocols._view import ObjectiveView
from node.protocols._waiting import DefendWaitingFor
from node.protocols._watch import WatchedChannel


@dataclass(frozen=True)
class Guard:
    """A tower's answer to a stale challenge of a channel it watches for its clients.

    Attributes:
        fixed: the channel's fixed part.
        submitted: ``(kind, channel)`` of the transactions the log shows as sent and
            not refused.
    """

    fixed: FixedPart
    submitted: frozenset[tuple[TransactionKind, bytes]] = frozenset()

    @property
    def id(self) -> ObjectiveId:
        """This objective's id."""
        return ObjectiveId(ObjectiveKind.GUARD, channel_id(self.fixed))

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.fixed)


def stale_answer(watched: WatchedChannel) -> SubmitChallenge | SubmitCheckpoint | None:
    """What answers the challenge registered on a watched channel: the latest
    counter-challenge a client handed over if it is later than the challenge, else a
    checkpoint with the latest supported state if that is later, else nothing (the
    challenge is not stale)."""
    turn = watched.challenge_turn
    if turn is None or watched.finalizes_at == 0 or watched.concluded:
        return None
    requests = [request for _, request in watched.requests]
    counters = [r.counter for r in requests if r.counter is not None]
    counter = max(counters, key=lambda c: c.candidate.state.turn_num, default=None)
    if counter is not None and counter.candidate.state.turn_num > turn:
        return counter
    supported = max((r.supported for r in requests), key=lambda s: s.state.turn_num)
    if supported.state.turn_num > turn:
        return SubmitCheckpoint(supported, ())
    return None


def update_guard(objective: Guard, event: Event) -> Guard:
    """``objective`` after a transaction record of its own.

    Raises:
        ProtocolError: a state from a peer (a guard takes none).
    """
    return update_submitted(objective, event)


def crank_guard(objective: Guard, view: ObjectiveView) -> CrankResult[Guard]:
    """One step of a guard: the answer due now, or done (the challenge was answered,
    cleared, concluded or finalized, or every client released the channel).

    Raises:
        ProtocolError: the view is of another channel.
    """
    watched = view.watched
    if watched is None:
        return CrankResult(objective, (), DefendWaitingFor.DONE)
    if watched.channel_id != objective.channel_id:
        raise ProtocolError(f"watched: 0x{watched.channel_id.hex()} is not the objective's channel")
    if watched.finalizes_at and watched.finalizes_at <= view.chain_time_s:
        return CrankResult(objective, (), DefendWaitingFor.DONE)  # the chain has decided
    answer = stale_answer(watched)
    if answer is None:
        return CrankResult(objective, (), DefendWaitingFor.DONE)
    effects: list[Effect] = []
    if (answer.kind, objective.channel_id) not in objective.submitted:
        effects.append(answer)
    return CrankResult(objective, tuple(effects), DefendWaitingFor.CLEARED)
