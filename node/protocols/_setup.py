"""The setup states every funding objective exchanges: prefund (turn 0), then postfund.

DirectFund and VirtualFund differ only in how the channel gets funded between
the two; the checks of a peer's setup state and the steps around the funding
are the same, and live here.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import TypeVar

from node.core import FixedPart, Signer, SingleAssetExit, State, constants
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols._checks import (
    check_expected_state,
    check_peer_state,
    has_signed_turn,
    objective_from_prefund,
    sign_and_send,
)
from node.protocols._effects import Effect, StateReceived
from node.protocols._ids import ObjectiveId
from node.protocols._snapshot import ChannelSnapshot

_Objective = TypeVar("_Objective")


def setup_state(fixed: FixedPart, outcome: Sequence[SingleAssetExit], turn_num: int) -> State:
    """The prefund (turn 0) or postfund (turn 1) state of a channel."""
    assert turn_num in (constants.prefund_turn_num, constants.postfund_turn_num)
    return State(fixed, b"", tuple(outcome), turn_num, False)


def check_setup_state(
    fixed: FixedPart, outcome: Sequence[SingleAssetExit], my_index: int, event: StateReceived
) -> None:
    """A peer's state must be this channel's prefund or postfund, signed as it should be.

    Raises:
        PeerStateError: another turn, another content, or bad signatures.
    """
    check_peer_state(fixed, my_index, event)
    turn = event.signed_state.state.turn_num
    if turn not in (constants.prefund_turn_num, constants.postfund_turn_num):
        raise PeerStateError(PeerFault.WRONG_TURN, f"turn_num {turn}, expected 0 or 1")
    check_expected_state(event.signed_state.state, setup_state(fixed, outcome, turn))


def from_prefund(
    event: StateReceived,
    build: Callable[[FixedPart, Sequence[SingleAssetExit]], _Objective],
    check: Callable[[_Objective, StateReceived], object],
) -> _Objective:
    """The objective a peer proposes with its signed prefund, built and checked.

    Raises:
        PeerStateError: not a prefund, ``build`` refuses it, or ``check`` does.
    """
    objective = objective_from_prefund(event, build)
    check(objective, event)
    return objective


class SetupStage(enum.Enum):
    """Where the exchange of setup states stands, for the objective to go on from."""

    PREFUND = "PREFUND"  # not every participant signed the prefund yet
    FUNDING = "FUNDING"  # the prefund is supported; we have not signed the postfund
    POSTFUND_SIGNED = "POSTFUND_SIGNED"  # we signed the postfund; others may not have
    FUNDED = "FUNDED"  # the postfund (or a later state) is supported


def crank_setup(
    objective_id: ObjectiveId,
    outcome: Sequence[SingleAssetExit],
    my_index: int,
    snapshot: ChannelSnapshot,
    signer: Signer,
) -> tuple[list[Effect], SetupStage]:
    """Sign and send our prefund if it is due, and say where the setup stands.

    Raises:
        ProtocolError: the channel supports a setup state other than ours.
    """
    prefund = setup_state(snapshot.fixed, outcome, constants.prefund_turn_num)
    supported = snapshot.supported
    if supported is not None and supported.state.turn_num >= constants.postfund_turn_num:
        return [], SetupStage.FUNDED
    if supported is not None and supported.state != prefund:
        raise ProtocolError(f"supported: the channel's prefund is not {objective_id}'s")
    effects: list[Effect] = []
    if not has_signed_turn(snapshot, my_index, constants.prefund_turn_num):
        effects.extend(sign_and_send(objective_id, my_index, prefund, snapshot, signer))
    if supported is None:
        return effects, SetupStage.PREFUND
    if has_signed_turn(snapshot, my_index, constants.postfund_turn_num):
        return effects, SetupStage.POSTFUND_SIGNED
    return effects, SetupStage.FUNDING


def sign_postfund(
    objective_id: ObjectiveId,
    outcome: Sequence[SingleAssetExit],
    my_index: int,
    snapshot: ChannelSnapshot,
    signer: Signer,
) -> list[Effect]:
    """Our postfund signature, sent to every other participant (the channel is funded)."""
    postfund = setup_state(snapshot.fixed, outcome, constants.postfund_turn_num)
    return list(sign_and_send(objective_id, my_index, postfund, snapshot, signer))
