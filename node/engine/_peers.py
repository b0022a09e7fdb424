"""What peers send: envelopes validated payload by payload, in the loop.

A payload that passes is logged (an accepted state, a voucher, a ledger proposal,
a decision on a proposed objective); one that does not is refused with a
Rejected record, a log line and a Rejection sent back. Nothing a peer sends can
stop the loop. The envelopes handled are logged as ReceivedMessages in the same
write, and acknowledged to the peer only once it is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, assert_never

from node.core import (
    SignedState,
    address_to_bytes,
    channel_id,
    signed_state_from_proto,
    state_hash,
    to_checksum_address,
)
from node.core.constants import (
    engine_objective_id_chars_max,
    engine_rejection_resend_ms,
    engine_rejection_resends_max,
    uint256_max,
)
from node.core.errors import (
    DeriveError,
    InvalidValueError,
    PeerFault,
    PeerStateError,
    ProtocolError,
)
from node.engine._clock import engine_clock
from node.engine._inputs import PeerMessages, Timer
from node.engine._records import (
    accepted_state_record,
    decision_record,
    now_ms,
)
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import ViewCache
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    ApprovalPolicy,
    Defend,
    DirectDefund,
    DirectFund,
    Guard,
    Objective,
    ObjectiveId,
    ObjectiveKind,
    Settle,
    StateReceived,
    VirtualDefund,
    VirtualFund,
    direct_defund_from_final,
    direct_fund_from_prefund,
    parse_objective_id,
    update,
    virtual_defund_from_final,
    virtual_fund_from_prefund,
)

logger = logging.getLogger("node.engine")

REJECTION_REASONS: Final = {
    PeerFault.MALFORMED: wire_pb2.REJECTION_REASON_MALFORMED,
    PeerFault.BAD_SIGNATURE: wire_pb2.REJECTION_REASON_BAD_SIGNATURE,
    PeerFault.WRONG_TURN: wire_pb2.REJECTION_REASON_WRONG_TURN,
    PeerFault.UNKNOWN_CHANNEL: wire_pb2.REJECTION_REASON_UNKNOWN_CHANNEL,
    PeerFault.NOT_A_PARTICIPANT: wire_pb2.REJECTION_REASON_NOT_A_PARTICIPANT,
    PeerFault.STALE_VOUCHER: wire_pb2.REJECTION_REASON_STALE_VOUCHER,
    PeerFault.INSUFFICIENT_FUNDS: wire_pb2.REJECTION_REASON_INSUFFICIENT_FUNDS,
    PeerFault.CHANNEL_NOT_OPEN: wire_pb2.REJECTION_REASON_CHANNEL_NOT_OPEN,
}
_DETAIL_CHARS_MAX: Final = 1000


class PolicyRefusal(ProtocolError):
    """Our policy declined an objective a peer proposed."""


class PeersMixin:
    """The engine's peer side (mixed into ``Engine``, which provides the state)."""

    address: str
    consensus_app: str
    payment_app: str
    state: EngineState
    views: ViewCache
    policy: ApprovalPolicy
    _log: Callable[[Step, log_pb2.LogRecord], None]
    _after: Callable[[float, Timer], None]
    _peer_voucher: Callable[[Step, str, wire_pb2.Payload], None]
    _peer_ledger_proposal: Callable[[Step, str, wire_pb2.Payload], None]
    _voucher_refused_early: Callable[[str, bytes], None]
    _peer_watch_request: Callable[[Step, str, wire_pb2.Payload], None]
    _log_rejection: Callable[[Step, str, str, bytes], bool]
    _may_advise: Callable[[Step, str], bool]
    _proposals_problem: Callable[[str], str | None]
    _out_of_time: Callable[[Step, str, float], bool]
    _defer: Callable[[PeerMessages], None]

    def _init_peers(self) -> None:
        self._rejection_resends: dict[ObjectiveId, int] = {}

    def _take_peer_messages(self, step: Step, item: PeerMessages) -> None:
        try:
            peer = to_checksum_address(item.sender, "sender")
        except InvalidValueError as error:
            logger.warning("dropped envelopes from a bad sender address: %s", error)
            return
        sender = address_to_bytes(peer)
        if item.acknowledged:
            self.state.forget_acknowledged(sender, item.acknowledged)
        if not item.envelopes:
            return
        seen = self.state.seen_of(sender)
        fresh: dict[int, None] = {}  # an ordered set: a frame may repeat an id
        handled: list[int] = []
        work_s = engine_clock().work_s
        started = work_s()
        for position, envelope in enumerate(item.envelopes):
            first = position == 0 and peer not in step.peer_time_s  # one always goes
            if not first and self._out_of_time(step, peer, work_s() - started):
                # Signature checks are budgeted: the rest waits for the next step.
                rest = item.envelopes[position:]
                self._defer(PeerMessages(item.sender, rest, own_arena=item.own_arena))
                break
            handled.append(envelope.id)
            if envelope.id in seen or envelope.id in fresh:
                continue  # handled already: acknowledged again below
            for payload in envelope.payloads:
                self._peer_payload(step, peer, envelope.id, payload)
            fresh[envelope.id] = None
        step.peer_time_s[peer] = step.peer_time_s.get(peer, 0.0) + work_s() - started
        if fresh:
            record = log_pb2.LogRecord(time_ms=now_ms())
            record.received_messages.peer = sender
            record.received_messages.message_ids.extend(fresh)
            self._log(step, record)
        step.received.setdefault(sender, []).extend(handled)

    def _peer_payload(
        self, step: Step, peer: str, message_id: int, payload: wire_pb2.Payload
    ) -> None:
        """Validate one payload and log what it causes; never raises on peer input."""
        body = payload.WhichOneof("body")
        if body == "rejection":
            self._peer_rejection(step, peer, payload)
            return
        try:
            if len(payload.objective_id) > engine_objective_id_chars_max:
                raise PeerStateError(
                    PeerFault.MALFORMED,
                    f"objective_id: {len(payload.objective_id)} characters, at most"
                    f" {engine_objective_id_chars_max}",
                )
            if body == "voucher":
                self._peer_voucher(step, peer, payload)
            elif body == "ledger_proposal":
                self._peer_ledger_proposal(step, peer, payload)
            elif body == "signed_state":
                self._peer_state(step, peer, payload)
            elif body == "watch_request":
                self._peer_watch_request(step, peer, payload)
            else:
                raise PeerStateError(PeerFault.MALFORMED, f"payload {body}: not handled here")
        except PolicyRefusal as error:
            self._reject(step, peer, message_id, payload, wire_pb2.REJECTION_REASON_POLICY, error)
        except PeerStateError as error:
            reason = REJECTION_REASONS[error.fault]
            self._reject(step, peer, message_id, payload, reason, error)
        except (InvalidValueError, ProtocolError) as error:
            reason = wire_pb2.REJECTION_REASON_MALFORMED
            self._reject(step, peer, message_id, payload, reason, error)
        except DeriveError:
            raise  # the module failed on our records: the step is abandoned
        except Exception as error:
            # Our bug, but a peer's input must never stop the node: refuse it loudly.
            logger.exception("internal error on a payload from %s", peer)
            reason = wire_pb2.REJECTION_REASON_MALFORMED
            self._reject(step, peer, message_id, payload, reason, error)

    def _reject(
        self,
        step: Step,
        peer: str,
        message_id: int,
        payload: wire_pb2.Payload,
        reason: int,
        error: Exception,
    ) -> None:
        name = wire_pb2.RejectionReason.Name(reason).removeprefix("REJECTION_REASON_")
        detail = str(error)[:_DETAIL_CHARS_MAX]
        problem = detail if detail.startswith(name) else f"{name}: {detail}"
        objective_id = payload.objective_id[:engine_objective_id_chars_max]
        if self._log_rejection(step, peer, problem, payload.SerializeToString()):
            logger.warning(
                "rejected a message from %s (objective %r): %s", peer, objective_id, problem
            )
        if self._may_advise(step, peer):
            answer = wire_pb2.Payload(objective_id=objective_id)
            answer.rejection.message_id = message_id
            answer.rejection.reason = reason  # type: ignore[assignment]
            answer.rejection.detail = detail
            step.send(peer, answer)

    def _peer_state(self, step: Step, peer: str, payload: wire_pb2.Payload) -> None:
        objective_id = parse_objective_id(payload.objective_id)
        signed = signed_state_from_proto(payload.signed_state)
        if channel_id(signed.state.fixed) != objective_id.channel_id:
            raise PeerStateError(
                PeerFault.MALFORMED,
                f"the state is not of channel 0x{objective_id.channel_id.hex()}",
            )
        if self.address not in signed.state.fixed.participants:
            raise PeerStateError(
                PeerFault.NOT_A_PARTICIPANT,
                f"this node ({self.address}) is not a participant of the channel",
            )
        event = StateReceived(peer, signed)
        entry = self.state.entry(objective_id)
        if entry is None:
            self._peer_proposal(step, objective_id, event)
        elif entry.failure is not None:
            raise PolicyRefusal(f"{objective_id} failed: {entry.failure}")
        else:
            update(entry.objective, event)  # checks the state; the log keeps it
            self._log_peer_state(step, signed)
        step.dirty.add(objective_id)

    def _log_peer_state(self, step: Step, signed: SignedState) -> None:
        """Log a peer's state unless this step or the channel's view has it already (a
        state sent again is not logged again)."""
        key = _state_key(signed)
        if key in step.accepted or self._holds(signed):
            return
        step.accepted.add(key)
        self._log(step, accepted_state_record(signed))

    def _holds(self, signed: SignedState) -> bool:
        """Whether the channel's view has ``signed`` with each of its signatures."""
        snapshot = self.views.snapshot(channel_id(signed.state.fixed))
        if snapshot is None:
            return False
        for index, signature in signed.signatures:
            latest = snapshot.latest_signed_by(index)
            if latest is None or latest.state != signed.state:
                return False
            if latest.signature_of(index) != signature:
                return False
        return True

    def _peer_proposal(self, step: Step, objective_id: ObjectiveId, event: StateReceived) -> None:
        """A peer's first state of an objective we do not run: build it, ask the policy."""
        channel = objective_id.channel_id
        others = [oid for oid in self.state.objectives if oid.channel_id == channel]
        objective = self._proposed_objective(objective_id, event, others)
        check_totals(objective)
        busy = self._proposals_problem(event.sender)
        if busy is not None:
            raise PolicyRefusal(f"busy: {busy}")
        decision = self.policy(objective)
        if not decision.approved:
            raise PolicyRefusal(f"policy: {decision.reason}")
        logger.info("approved %s proposed by %s", objective_id, event.sender)
        # The fold builds the objective from the state logged just before the decision.
        self._log(step, accepted_state_record(event.signed_state))
        step.accepted.add(_state_key(event.signed_state))
        approval = decision_record(objective_id, approved=True, reason="", proposer=event.sender)
        self._log(step, approval)

    def _proposed_objective(
        self, objective_id: ObjectiveId, event: StateReceived, others: list[ObjectiveId]
    ) -> Objective:
        channel = objective_id.channel_id
        kind = objective_id.kind
        if kind in (ObjectiveKind.DIRECT_FUND, ObjectiveKind.VIRTUAL_FUND):
            if others or self.views.snapshot(channel) is not None:
                raise PeerStateError(
                    PeerFault.MALFORMED, f"channel 0x{channel.hex()} exists: no second funding"
                )
            if kind is ObjectiveKind.DIRECT_FUND:
                return direct_fund_from_prefund(event, self.address, self.consensus_app)
            if self.payment_app:
                return virtual_fund_from_prefund(event, self.address, self.payment_app)
        elif kind in (ObjectiveKind.DIRECT_DEFUND, ObjectiveKind.VIRTUAL_DEFUND):
            snapshot = self.views.snapshot(channel)
            if snapshot is None:
                raise PeerStateError(PeerFault.UNKNOWN_CHANNEL, f"no channel 0x{channel.hex()}")
            if any(self.state.objectives[oid].running for oid in others):
                raise PeerStateError(PeerFault.WRONG_TURN, f"channel 0x{channel.hex()} is busy")
            if kind is ObjectiveKind.DIRECT_DEFUND:
                return direct_defund_from_final(snapshot, self.address, event)
            if self.payment_app:
                received = self.state.received.get(channel)
                largest = received.amount if received is not None else 0
                try:
                    return virtual_defund_from_final(snapshot, self.address, event, largest)
                except PeerStateError:
                    raise
                except ProtocolError as error:
                    raise PeerStateError(PeerFault.CHANNEL_NOT_OPEN, str(error)) from error
        # Kinds this node does not run (or a settlement, which is never proposed).
        raise PeerStateError(PeerFault.MALFORMED, f"objective kind {kind.value} is not supported")

    def _peer_rejection(self, step: Step, peer: str, payload: wire_pb2.Payload) -> None:
        rejection = payload.rejection
        name = wire_pb2.RejectionReason.Name(rejection.reason)
        logger.warning(
            "%s rejected our message %d (objective %r): %s: %s",
            peer,
            rejection.message_id,
            payload.objective_id[:100],
            name,
            rejection.detail[:_DETAIL_CHARS_MAX],
        )
        try:
            objective_id = parse_objective_id(payload.objective_id)
        except InvalidValueError:
            return
        if (
            rejection.reason == wire_pb2.REJECTION_REASON_CHANNEL_NOT_OPEN
            and objective_id.kind is ObjectiveKind.VIRTUAL_FUND
        ):
            self._voucher_refused_early(peer, objective_id.channel_id)
        entry = self.state.entry(objective_id)
        if entry is None or not entry.running or peer not in entry.objective.fixed.participants:
            return
        if rejection.reason != wire_pb2.REJECTION_REASON_POLICY:
            self._resend_after_rejection(objective_id)
            return
        reason = f"refused by {peer}: {rejection.detail[:_DETAIL_CHARS_MAX]}"
        self._log(step, decision_record(objective_id, approved=False, reason=reason))
        step.changed.add(objective_id)

    def _resend_after_rejection(self, objective_id: ObjectiveId) -> None:
        """Offer our latest state again soon: the peer may have judged it too early."""
        attempts = self._rejection_resends.get(objective_id, 0)
        if attempts >= engine_rejection_resends_max:
            return
        self._rejection_resends[objective_id] = attempts + 1
        self._after(engine_rejection_resend_ms / 1000, Timer("state", objective_id))


def _state_key(signed: SignedState) -> bytes:
    """A signed state's identity: its hash and each signature."""
    return state_hash(signed.state) + b"".join(sig for _, sig in sorted(signed.signatures))


def check_totals(objective: Objective) -> None:
    """Every asset's outcome must fit the adjudicator's uint256 holdings.

    Raises:
        PeerStateError: an outcome whose total overflows.
    """
    match objective:
        case DirectFund() | VirtualFund():
            outcome = objective.outcome
        case DirectDefund() | VirtualDefund():
            outcome = objective.final_state.outcome
        case Settle() | Defend() | Guard():
            return
        case _:
            assert_never(objective)
    for asset_exit in outcome:
        total = sum(allocation.amount for allocation in asset_exit.allocations)
        if total > uint256_max:
            raise PeerStateError(
                PeerFault.MALFORMED, f"outcome[{asset_exit.asset}]: the total exceeds uint256"
            )
