"""Ledger (consensus) channels at run time: proposals logged, sent, countersigned, re-sent.

For each open ledger channel the engine keeps a ``LedgerChannel`` built from
the supported state the derivation module holds and the AcceptedProposal
records logged since. The leader logs its proposal before sending it; the
follower logs a proposal it checked and queued, and countersigns only what it
was asked to (a virtual channel's objective expects it). A consensus reached
on either side is logged as an AcceptedState with both signatures, so the
module's supported state and guarantees follow the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import trio

from node.core import Signer
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import Input, LedgerTick
from node.engine._ledger_codec import (
    accepted_proposal_record,
    signed_proposal_from_proto,
    signed_proposal_to_proto,
)
from node.engine._records import accepted_state_record
from node.engine._table import Entry
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    ChannelSnapshot,
    LedgerChannel,
    ObjectiveId,
    ObjectiveKind,
    Proposal,
    ProposeLedgerUpdate,
    QueuedProposal,
    SignedProposal,
    SignLedgerProposal,
    apply_proposal,
    ledger_next_to_sign,
    ledger_propose,
    ledger_receive,
    ledger_sign_next,
    ledger_unacknowledged,
    new_ledger_channel,
)

logger = logging.getLogger("node.engine")

LEDGER_OBJECTIVE = "Ledger-0x"  # objective_id of ledger payloads: the ledger's id


class LedgersMixin:
    """The engine's ledger side (mixed into ``Engine``, which provides the state)."""

    address: str
    signer: Signer
    consensus_app: str
    snapshot: Callable[[bytes], ChannelSnapshot | None]
    _outgoing: list[tuple[str, wire_pb2.Payload]]
    _ledgers: dict[bytes, LedgerChannel]
    _ledger_wanted: dict[bytes, list[Proposal]]
    objectives: dict[ObjectiveId, Entry]

    # ------------------------------------------------------------------ views

    def ledger_runtime(self, ledger_id: bytes) -> LedgerChannel | None:
        """Our ``LedgerChannel`` for an open ledger (None: no such open ledger)."""
        if ObjectiveId(ObjectiveKind.DIRECT_DEFUND, ledger_id) in self.objectives:
            self._ledgers.pop(ledger_id, None)  # closing: no more proposals
            return None
        known = self._ledgers.get(ledger_id)
        if known is not None:
            return known
        snapshot = self.snapshot(ledger_id)
        if snapshot is None or snapshot.fixed.app_definition != self.consensus_app:
            return None
        supported = snapshot.supported
        if supported is None or supported.state.turn_num < 1 or supported.state.is_final:
            return None
        if snapshot.finalizes_at != 0:
            return None  # challenged or concluded on chain: the chain decides from here
        try:
            ledger = new_ledger_channel(supported, self.address)
        except ProtocolError as error:
            logger.warning("ledger 0x%s is not usable: %s", ledger_id.hex(), error)
            return None
        self._ledgers[ledger_id] = ledger
        return ledger

    def _replay_ledgers(self, records: Iterable[log_pb2.LogRecord]) -> None:
        """Rebuild each ledger's queue from the proposals logged after its consensus."""
        for record in records:
            if record.WhichOneof("payload") != "accepted_proposal":
                continue
            signed = signed_proposal_from_proto(record.accepted_proposal.proposal)
            ledger = self.ledger_runtime(signed.ledger_id)
            if ledger is None:
                continue
            if signed.turn_num == ledger.turn_num and not ledger.is_leader:
                # The proposal behind our latest countersignature: answer it again if asked.
                answer = SignedProposal(
                    ledger.id, ledger.turn_num, signed.proposal, ledger.signatures[1]
                )
                self._ledgers[ledger.id] = _with_ack(ledger, answer)
            elif signed.turn_num > ledger.turn_num:
                self._ledgers[ledger.id] = _requeue(ledger, signed)

    def _ledger_resends(self) -> list[tuple[str, wire_pb2.Payload]]:
        """The leader's unacknowledged proposals and the follower's last answers."""
        sends: list[tuple[str, wire_pb2.Payload]] = []
        for ledger in self._ledgers.values():
            items = list(ledger_unacknowledged(ledger))
            if not ledger.is_leader and ledger.acknowledgement is not None:
                items.append(ledger.acknowledgement)
            sends.extend(_payload_to(ledger, item) for item in items)
        return sends

    async def _ledger_ticks(self, send: trio.MemorySendChannel[Input], interval_s: float) -> None:
        while True:
            await trio.sleep(interval_s)
            if any(ledger.queue for ledger in self._ledgers.values()):
                await send.send(LedgerTick())

    # ------------------------------------------------------------------ in the loop

    def _ledger_request(
        self, effect: ProposeLedgerUpdate | SignLedgerProposal
    ) -> list[log_pb2.LogRecord]:
        """Propose now (leader), or remember to countersign (follower).

        Raises:
            CommandRefusedError: no such open ledger, the wrong role, or a proposal
                that does not fit.
        """
        ledger = self.ledger_runtime(effect.ledger_id)
        if ledger is None:
            raise CommandRefusedError(
                Refusal.NOT_FOUND, f"no open ledger channel 0x{effect.ledger_id.hex()}"
            )
        if isinstance(effect, SignLedgerProposal):
            if ledger.is_leader:
                raise CommandRefusedError(Refusal.INVALID, "the leader does not countersign")
            if effect.proposal not in self._ledger_wanted.setdefault(ledger.id, []):
                self._ledger_wanted[ledger.id].append(effect.proposal)
            return self._ledger_sign_wanted()
        if any(queued.signed.proposal == effect.proposal for queued in ledger.queue):
            return []  # proposed already: re-sent on the timer until acknowledged
        try:
            after, signed = ledger_propose(ledger, effect.proposal, self.signer)
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        self._ledgers[ledger.id] = after
        self._outgoing.append(_payload_to(after, signed))
        logger.info("ledger 0x%s: proposed turn %d", ledger.id.hex()[:8], signed.turn_num)
        return [accepted_proposal_record(signed)]

    def _ledger_sign_wanted(self) -> list[log_pb2.LogRecord]:
        """Follower: countersign every queue head that was asked for, in turn."""
        records: list[log_pb2.LogRecord] = []
        for ledger_id, wanted in self._ledger_wanted.items():
            ledger = self._ledgers[ledger_id]
            head = ledger_next_to_sign(ledger)
            while head is not None and head.proposal in wanted:
                wanted.remove(head.proposal)
                ledger, answer = ledger_sign_next(ledger, head.proposal, self.signer)
                records.append(accepted_state_record(ledger.consensus()))
                self._outgoing.append(_payload_to(ledger, answer))
                head = ledger_next_to_sign(ledger)
            self._ledgers[ledger_id] = ledger
        return records

    def _peer_ledger_proposal(
        self, peer: str, payload: wire_pb2.Payload
    ) -> list[log_pb2.LogRecord]:
        """A proposal (we follow) or a countersignature (we lead) from the other party.

        Raises:
            PeerStateError: an unknown ledger, a sender who is not the other
                party, or what ``ledger_receive`` refuses.
        """
        signed = signed_proposal_from_proto(payload.ledger_proposal)
        ledger = self.ledger_runtime(signed.ledger_id)
        if ledger is None:
            raise PeerStateError(
                PeerFault.UNKNOWN_CHANNEL, f"no open ledger 0x{signed.ledger_id.hex()}"
            )
        other = ledger.fixed.participants[1 - ledger.my_index]
        if peer != other:
            raise PeerStateError(
                PeerFault.NOT_A_PARTICIPANT, f"{peer} is not the other party of the ledger"
            )
        after = ledger_receive(ledger, signed)
        self._ledgers[ledger.id] = after
        if ledger.is_leader:
            if after.turn_num == ledger.turn_num:
                return []
            return [accepted_state_record(after.consensus())]
        ack = ledger.acknowledgement
        if signed.turn_num <= ledger.turn_num and ack is not None:
            self._outgoing.append(_payload_to(ledger, ack))  # our answer was lost
        if after == ledger:
            return []
        records = [accepted_proposal_record(signed)]
        # A proposal that filled a gap drains the buffer: log what that queued as well.
        records.extend(
            accepted_proposal_record(queued.signed)
            for queued in after.queue
            if queued.signed != signed and queued not in ledger.queue
        )
        return records + self._ledger_sign_wanted()


def _payload_to(ledger: LedgerChannel, signed: SignedProposal) -> tuple[str, wire_pb2.Payload]:
    payload = wire_pb2.Payload(objective_id=LEDGER_OBJECTIVE + ledger.id.hex())
    payload.ledger_proposal.CopyFrom(signed_proposal_to_proto(signed))
    return ledger.fixed.participants[1 - ledger.my_index], payload


def _requeue(ledger: LedgerChannel, signed: SignedProposal) -> LedgerChannel:
    """Replay one logged proposal after the consensus turn."""
    if ledger.is_leader:
        turn, outcome = ledger.latest()
        if signed.turn_num != turn + 1:
            return ledger  # acknowledged in a consensus the module holds already
        queued = QueuedProposal(signed, apply_proposal(outcome, signed.proposal))
        return LedgerChannel(
            ledger.fixed,
            ledger.my_index,
            ledger.turn_num,
            ledger.outcome,
            ledger.signatures,
            (*ledger.queue, queued),
        )
    return ledger_receive(ledger, signed)


def _with_ack(ledger: LedgerChannel, answer: SignedProposal) -> LedgerChannel:
    return LedgerChannel(
        ledger.fixed,
        ledger.my_index,
        ledger.turn_num,
        ledger.outcome,
        ledger.signatures,
        ledger.queue,
        ledger.buffered,
        answer,
    )
