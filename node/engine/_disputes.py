"""What the node does when one of its channels is challenged on chain.

Every challenge of a channel we are in gets an answer, started in the step that logs
the challenge (so a restart finds it in the log and goes on):

* a ledger challenged with a state older than its latest supported one is defended:
  a Defend objective clears the challenge with that state (``checkpoint``);
* a ledger challenged with its latest state will finalize with it: a Settle objective
  enforces what the ledger guarantees, then reclaims and pays out;
* a payment channel challenged at all will finalize: each of our ledgers that funds it
  is settled (the settlement also answers a stale challenge of the payment channel:
  the payee with its largest voucher).

The adjudicator's events do not carry a channel's fixed part: the engine completes a
challenge's candidate (and the asset of an AllocationUpdated) from the channel's view
before the event is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from node.core import (
    InvalidSignatureError,
    SignedState,
    State,
    address_to_bytes,
    recover_state_signer,
    signed_state_to_proto,
    single_asset_exit_from_proto,
)
from node.core.errors import InvalidValueError, ProtocolError
from node.engine._records import defend_record, settle_record
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import ViewCache
from node.proto import log_pb2
from node.protocols import (
    ChannelSnapshot,
    ObjectiveId,
    guaranteed_targets,
    is_stale_challenge,
    new_defend,
    settle_ledger,
)

logger = logging.getLogger("node.engine")


class DisputesMixin:
    """The engine's answers to challenges (mixed into ``Engine``)."""

    address: str
    consensus_app: str
    state: EngineState
    views: ViewCache
    _log: Callable[[Step, log_pb2.LogRecord], None]
    _ledger_snapshots: Callable[[], list[ChannelSnapshot]]
    _publish: Callable[[str, Mapping[str, Any]], None]

    def _complete_event(self, event: log_pb2.ChainEvent, snapshot: ChannelSnapshot) -> None:
        """Fill in what the event leaves out and the channel's view knows."""
        case = event.WhichOneof("event")
        if case == "challenge_registered":
            registered = event.challenge_registered
            if registered.HasField("candidate_part"):
                candidate = candidate_of(registered, snapshot)
                if candidate is not None and not registered.HasField("candidate"):
                    registered.candidate.CopyFrom(signed_state_to_proto(candidate))
            registered.ClearField("candidate_part")
            registered.ClearField("candidate_signatures")
        elif case == "allocation_updated" and not event.allocation_updated.asset:
            update = event.allocation_updated
            known = snapshot.supported or snapshot.challenge
            if known is not None and update.asset_index < len(known.state.outcome):
                asset = known.state.outcome[update.asset_index].asset
                update.asset = address_to_bytes(asset)

    def _answer_challenge(
        self, step: Step, snapshot: ChannelSnapshot, registered: log_pb2.ChallengeRegistered
    ) -> None:
        """Start what answers a challenge of one of our channels (see the module's doc)."""
        if self.address not in snapshot.fixed.participants:
            return
        turn = registered.candidate.state.turn_num if registered.HasField("candidate") else None
        answer = "none"
        if snapshot.fixed.app_definition == self.consensus_app:
            if turn is not None and is_stale_challenge(snapshot, turn):
                answer = self._start_defence(step, snapshot)
            else:
                answer = self._start_settlement(step, snapshot, snapshot.channel_id)
        elif self.views.is_virtual(snapshot):
            for ledger in self._ledgers_funding(snapshot.channel_id):
                answer = self._start_settlement(step, ledger, snapshot.channel_id)
        self._publish(
            "channel_challenged",
            {
                "channel_id": "0x" + snapshot.channel_id.hex(),
                "candidate_turn_num": turn,
                "finalizes_at": registered.finalizes_at,
                "answer": answer,
            },
        )

    def _ledgers_funding(self, channel: bytes) -> list[ChannelSnapshot]:
        """Our ledgers whose supported state guarantees ``channel``."""
        found = []
        for ledger in self._ledger_snapshots():
            supported = ledger.supported
            if self.address not in ledger.fixed.participants or supported is None:
                continue
            if channel in guaranteed_targets(supported.state):
                found.append(ledger)
        return found

    def _start_defence(self, step: Step, snapshot: ChannelSnapshot) -> str:
        objective = new_defend(snapshot, self.address)
        if self._runs(objective.id):
            return "defending"
        logger.warning("0x%s: challenged with a stale state: defending", snapshot.channel_id.hex())
        self._log(step, defend_record(objective.id, objective.fixed))
        step.dirty.add(objective.id)
        return "checkpoint"

    def _start_settlement(self, step: Step, ledger: ChannelSnapshot, channel: bytes) -> str:
        try:
            objective = settle_ledger(ledger, self.address)
        except ProtocolError as error:
            logger.warning("ledger 0x%s cannot be settled: %s", ledger.channel_id.hex(), error)
            return "none"
        if self._runs(objective.id):
            return "settling"
        logger.warning(
            "0x%s: challenged: settling ledger 0x%s", channel.hex(), ledger.channel_id.hex()
        )
        self._log(step, settle_record(objective.id, channel, objective.ledger))
        step.dirty.add(objective.id)
        return "settle"

    def _runs(self, objective_id: ObjectiveId) -> bool:
        entry = self.state.entry(objective_id)
        return entry is not None and entry.failure is None


def candidate_of(
    registered: log_pb2.ChallengeRegistered, snapshot: ChannelSnapshot
) -> SignedState | None:
    """The candidate the event carries, made whole with the channel's fixed part: each
    signature by a participant kept at that participant's index (None: it does not
    decode, or a signature is not a participant's)."""
    part = registered.candidate_part
    try:
        outcome = tuple(single_asset_exit_from_proto(item) for item in part.outcome)
        state = State(snapshot.fixed, part.app_data, outcome, part.turn_num, part.is_final)
        participants = snapshot.fixed.participants
        signed = SignedState(state)
        for signature in registered.candidate_signatures:
            signer = recover_state_signer(state, signature)
            if signer not in participants:
                return None
            signed = signed.with_signature(participants.index(signer), signature)
    except (InvalidValueError, InvalidSignatureError) as error:
        logger.warning("a challenge's candidate does not decode: %s", error)
        return None
    return signed
