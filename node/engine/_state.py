"""The engine's state that is not channel state, as a fold of the event log.

Channel state lives in the derivation module (DESIGN.md, rule 3). What the
engine keeps beside it is folded from the same records by ``EngineState.apply``:

* objectives and the progress the log recorded (transactions sent, refusals);
* per ledger channel, the proposals logged from its consensus turn on;
* the largest voucher received and the largest sent, per channel;
* per peer: the id of our next message, our messages not yet acknowledged, and
  the ids of its messages we handled;
* the chain cursor (the last block and adjudicator event logged);
* as a watchtower, the clients' channels it watches; as a client, its towers.

The live engine folds each record as it builds it and a restart folds the
records after the newest snapshot: one function, so both agree. Every change
goes through the journal so that a step whose write fails is undone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from node.core import (
    State,
    Voucher,
    address_from_bytes,
    fixed_part_from_proto,
    single_asset_exit_from_proto,
    state_from_proto,
    to_checksum_address,
    voucher_from_proto,
)
from node.core.errors import InvalidValueError, ProtocolError
from node.engine._journal import Journal
from node.engine._ledger_codec import signed_proposal_from_proto
from node.engine._records import TX_KIND_FROM_LOG, voucher_payload
from node.engine._watch_codec import watch_request_from_proto
from node.proto import log_pb2, nitro_pb2, wire_pb2
from node.protocols import (
    ChannelSnapshot,
    Defend,
    DirectDefund,
    Guard,
    Objective,
    ObjectiveId,
    ObjectiveKind,
    Settle,
    SignedProposal,
    TransactionFailed,
    TransactionKind,
    TransactionSubmitted,
    VirtualDefund,
    WaitingFor,
    WatchedChannel,
    is_done,
    new_direct_defund,
    new_direct_fund,
    new_virtual_defund,
    new_virtual_fund,
    parse_objective_id,
    update,
)

logger = logging.getLogger("node.engine")

# A transaction sent: (objective, kind, channel, asset of a deposit).
UnconfirmedKey = tuple[ObjectiveId, TransactionKind, bytes, str | None]

# Finished objectives kept for the API, oldest dropped first.
FINISHED_KEPT: Final = 10_000


@dataclass(frozen=True)
class Entry:
    """One objective the node takes part in.

    Attributes:
        objective: the objective after every event applied so far.
        waiting_for: the pause point of its last crank (None: not cranked yet).
        failure: why it failed (None while it runs or once done).
        created_ms: ``time_ms`` of the record that started it.
        proposer: the peer that proposed it (None: this node started it).
    """

    objective: Objective
    waiting_for: WaitingFor | None = None
    failure: str | None = None
    created_ms: int = 0
    proposer: str | None = None

    @property
    def done(self) -> bool:
        return self.waiting_for is not None and is_done(self.waiting_for)

    @property
    def running(self) -> bool:
        return self.failure is None and not self.done


@dataclass(frozen=True)
class Seen:
    """The ids of a peer's messages handled: all of 1..contiguous_max, and ``above``."""

    contiguous_max: int = 0
    above: frozenset[int] = frozenset()

    def __contains__(self, message_id: object) -> bool:
        if not isinstance(message_id, int):
            return False
        return 0 < message_id <= self.contiguous_max or message_id in self.above

    def with_ids(self, message_ids: list[int] | tuple[int, ...]) -> Seen:
        """These ids added; the watermark kept as high as possible."""
        contiguous = self.contiguous_max
        above = set(self.above)
        above.update(message_id for message_id in message_ids if message_id > contiguous)
        while contiguous + 1 in above:
            contiguous += 1
            above.remove(contiguous)
        return Seen(contiguous, frozenset(above))


@dataclass(frozen=True)
class ChainCursor:
    """How far the chain watcher's events are logged.

    Attributes:
        last_block: the last BlockProcessed logged (None: none yet).
        last_event: (block, log index) of the last adjudicator event logged.
    """

    last_block: int | None = None
    last_event: tuple[int, int] | None = None


_CURSOR: Final = "chain"
_LOG_INDEX_MAX: Final = 2**32 - 1  # above every log index of a block


# Objectives that never bring a ledger channel the module did not know.
_KINDS_WITHOUT_LEDGERS = frozenset({ObjectiveKind.VIRTUAL_FUND, ObjectiveKind.VIRTUAL_DEFUND})


class EngineState:
    """Everything the engine knows that the derivation module does not.

    Args:
        me: our address.
        consensus_app: the ConsensusApp's address (ledger channels).
        payment_app: the VirtualPaymentApp's address ("": none).
    """

    def __init__(self, me: str, consensus_app: str, payment_app: str) -> None:
        self.me = me
        self.consensus_app = consensus_app
        self.payment_app = payment_app
        self.journal = Journal()
        self.objectives: dict[ObjectiveId, Entry] = {}
        self.running: dict[ObjectiveId, None] = {}  # an ordered set
        self.finished: dict[ObjectiveId, None] = {}  # oldest first
        self.ledger_proposals: dict[bytes, tuple[SignedProposal, ...]] = {}
        self.received: dict[bytes, Voucher] = {}
        self.paid: dict[bytes, int] = {}
        self.sent_vouchers: dict[bytes, Voucher] = {}  # the voucher of each ``paid``
        self.outbox: dict[bytes, dict[int, bytes]] = {}  # peer -> id -> Envelope bytes
        # Bytes of each peer's outbox: kept beside the journal (a count, not state),
        # counted again after a roll back.
        self.outbox_bytes: dict[bytes, int] = {}
        self.next_ids: dict[bytes, int] = {}
        self.seen: dict[bytes, Seen] = {}
        self._scalars: dict[str, ChainCursor] = {_CURSOR: ChainCursor()}
        # Closes logged before records carried their final state: built from the
        # channel's view once the module has caught up (``complete_closes``).
        self.closes_to_complete: dict[ObjectiveId, int] = {}  # -> created_ms
        self.watched: dict[bytes, WatchedChannel] = {}  # as a tower, by channel
        self.watch_counts: dict[str, int] = {}  # as a tower: channels watched per client
        self.towers: dict[str, None] = {}  # as a client: an ordered set
        # Transactions sent and neither mined nor refused: their hashes (a restart asks
        # the chain what became of them).
        self.unconfirmed: dict[UnconfirmedKey, tuple[bytes, ...]] = {}
        # Changes of objectives that may bring the module a ledger channel: a cache key
        # for the engine's index of ledgers (not state; never rolled back).
        self.ledger_generation = 0
        # Transactions of running objectives the chain mined: their hashes. A reorg
        # makes them unconfirmed again (replaced blocks may drop them, or run them again
        # with another result), so that the chain is asked what became of them.
        self.mined: dict[UnconfirmedKey, tuple[bytes, ...]] = {}
        # The state of the record folded last (decoded only if a decision follows it).
        self._previous_state: tuple[bytes, nitro_pb2.State] | None = None

    # ------------------------------------------------------------------ reading

    @property
    def cursor(self) -> ChainCursor:
        return self._scalars[_CURSOR]

    def entry(self, objective_id: ObjectiveId) -> Entry | None:
        return self.objectives.get(objective_id)

    def running_entries(self) -> Iterator[tuple[ObjectiveId, Entry]]:
        """Running objectives, in the order they started."""
        for objective_id in list(self.running):
            yield objective_id, self.objectives[objective_id]

    def count_backlog(self) -> None:
        """Count every outbox's bytes again (after a roll back)."""
        self.outbox_bytes = {
            peer: sum(len(envelope) for envelope in box.values())
            for peer, box in self.outbox.items()
        }

    def backlog(self, peer: bytes) -> tuple[int, int]:
        """Our messages ``peer`` has not acknowledged: how many, and their bytes."""
        return len(self.outbox.get(peer, ())), self.outbox_bytes.get(peer, 0)

    def outbox_of(self, peer: bytes) -> dict[int, bytes]:
        return self.outbox.get(peer, {})

    def next_id(self, peer: bytes) -> int:
        return self.next_ids.get(peer, 1)

    def seen_of(self, peer: bytes) -> Seen:
        return self.seen.get(peer, Seen())

    # ------------------------------------------------------------------ changes

    def put_entry(self, objective_id: ObjectiveId, entry: Entry) -> None:
        """Add or replace an objective, keeping the running and finished sets."""
        if objective_id.kind not in _KINDS_WITHOUT_LEDGERS:
            self.ledger_generation += 1
        journal = self.journal
        journal.set(self.objectives, objective_id, entry)
        if entry.running:
            journal.set(self.running, objective_id, None)
            journal.delete(self.finished, objective_id)
        else:
            journal.delete(self.running, objective_id)
            journal.set(self.finished, objective_id, None)

    def set_cursor(self, cursor: ChainCursor) -> None:
        self.journal.set(self._scalars, _CURSOR, cursor)

    def sent_envelope(self, sent: log_pb2.SentMessage) -> bytes:
        """The bytes of the message a SentMessage record stands for: its envelope, with
        the latest voucher we signed on each of its voucher channels after its payloads
        (the record leaves them out: the AcceptedVoucher records hold them)."""
        if not sent.voucher_channels:
            return sent.envelope.SerializeToString()
        envelope = wire_pb2.Envelope()
        envelope.CopyFrom(sent.envelope)
        for channel in sent.voucher_channels:
            envelope.payloads.append(voucher_payload(self.sent_vouchers[channel]))
        return envelope.SerializeToString()

    def add_sent(self, peer: bytes, message_id: int, envelope: bytes) -> None:
        """A message of ours, logged: unacknowledged until the peer says so."""
        box = self.outbox.get(peer)
        if box is None:
            box = {}
            self.journal.set(self.outbox, peer, box)
        if message_id not in box:
            self.outbox_bytes[peer] = self.outbox_bytes.get(peer, 0) + len(envelope)
        self.journal.set(box, message_id, envelope)
        if message_id >= self.next_id(peer):
            self.journal.set(self.next_ids, peer, message_id + 1)

    def acknowledged(self, peer: bytes, message_ids: list[int] | tuple[int, ...]) -> list[int]:
        """Drop what a peer acknowledged; returns the ids that were outstanding."""
        box = self.outbox.get(peer)
        if not box:
            return []
        removed = [message_id for message_id in message_ids if message_id in box]
        freed = sum(len(box[message_id]) for message_id in removed)
        for message_id in removed:
            self.journal.delete(box, message_id)
        if freed:
            self.outbox_bytes[peer] = self.outbox_bytes.get(peer, 0) - freed
        return removed

    def forget_acknowledged(self, peer: bytes, message_ids: tuple[int, ...]) -> None:
        """Drop what a peer acknowledged, outside the journal: an acknowledged message
        never needs sending again, whatever becomes of the step (so no record either;
        a snapshot simply no longer holds it)."""
        box = self.outbox.get(peer)
        if box:
            freed = 0
            for message_id in message_ids:
                envelope = box.pop(message_id, None)
                if envelope is not None:
                    freed += len(envelope)
            if freed:
                self.outbox_bytes[peer] = self.outbox_bytes.get(peer, 0) - freed

    def add_seen(self, peer: bytes, message_ids: list[int] | tuple[int, ...]) -> None:
        self.journal.set(self.seen, peer, self.seen_of(peer).with_ids(message_ids))

    def prune(self) -> None:
        """After a commit: forget the oldest finished objectives beyond the bound."""
        assert len(self.journal) == 0, "prune only what is committed"
        while len(self.finished) > FINISHED_KEPT:
            oldest = next(iter(self.finished))
            del self.finished[oldest]
            self.objectives.pop(oldest, None)
        for key in [k for k in self.unconfirmed if k[0] not in self.running]:
            del self.unconfirmed[key]
        for key in [k for k in self.mined if k[0] not in self.running]:
            del self.mined[key]

    # ------------------------------------------------------------------ the fold

    def apply(self, record: log_pb2.LogRecord) -> None:
        """Fold one record (one the live engine built, or one read from the log)."""
        case = record.WhichOneof("payload")
        previous, self._previous_state = self._previous_state, None
        if case == "accepted_state":
            self._apply_state(record.accepted_state)
        elif case == "command":
            self._apply_command(record.command, previous, record.time_ms)
        elif case == "submitted_transaction":
            self._apply_transaction(record.submitted_transaction)
        elif case == "accepted_voucher":
            self._apply_voucher(record.accepted_voucher)
        elif case == "accepted_proposal":
            self._apply_proposal(signed_proposal_from_proto(record.accepted_proposal.proposal))
        elif case == "sent_message":
            sent = record.sent_message
            self.add_sent(sent.peer, sent.envelope.id, self.sent_envelope(sent))
        elif case == "acknowledgement":
            self.acknowledged(record.acknowledgement.peer, list(record.acknowledgement.message_ids))
        elif case == "received_messages":
            self.add_seen(record.received_messages.peer, list(record.received_messages.message_ids))
        elif case == "chain_event":
            self._apply_chain_event(record.chain_event)
        elif case == "watch":
            self._apply_watch(record.watch)

    def _apply_state(self, accepted: log_pb2.AcceptedState) -> None:
        channel = accepted.channel_id
        signed = accepted.signed_state
        if channel in self.ledger_proposals and len(signed.signatures) == 2:
            # A new ledger consensus: proposals below it are settled.
            turn = signed.state.turn_num
            kept = tuple(p for p in self.ledger_proposals[channel] if p.turn_num >= turn)
            self.journal.set(self.ledger_proposals, channel, kept)
        self._previous_state = (channel, signed.state)

    def _apply_proposal(self, signed: SignedProposal) -> None:
        queued = self.ledger_proposals.get(signed.ledger_id, ())
        kept = tuple(p for p in queued if p.turn_num != signed.turn_num)
        ordered = tuple(sorted((*kept, signed), key=lambda p: p.turn_num))
        self.journal.set(self.ledger_proposals, signed.ledger_id, ordered)

    def _apply_voucher(self, accepted: log_pb2.AcceptedVoucher) -> None:
        voucher = voucher_from_proto(accepted.voucher)
        channel = voucher.channel_id
        if accepted.sent:
            if voucher.amount > self.paid.get(channel, 0):
                self.journal.set(self.paid, channel, voucher.amount)
                self.journal.set(self.sent_vouchers, channel, voucher)
            return
        known = self.received.get(channel)
        if known is None or known.amount < voucher.amount:
            self.journal.set(self.received, channel, voucher)
            self._challenge_again(channel)

    def _challenge_again(self, channel: bytes) -> None:
        """A larger voucher came for a channel a settlement of ours challenged already:
        that challenge no longer holds our best state, so the settlement may challenge
        again (with the redemption state carrying the voucher, a later turn than a
        postfund) instead of waiting for the old candidate to finalize."""
        key = (TransactionKind.CHALLENGE, channel)
        for objective_id, entry in self.running_entries():
            settle = entry.objective
            if isinstance(settle, Settle) and key in settle.submitted:
                again = dataclasses.replace(settle, submitted=settle.submitted - {key})
                self.put_entry(objective_id, dataclasses.replace(entry, objective=again))

    def _apply_chain_event(self, event: log_pb2.ChainEvent) -> None:
        cursor = self.cursor
        case = event.WhichOneof("event")
        if case == "block_processed":
            block = event.block_processed.block_number
            self.set_cursor(dataclasses.replace(cursor, last_block=block))
        elif case == "blocks_reverted":
            # The watcher reads again from the first replaced block.
            before = event.blocks_reverted.first_block - 1
            last_block = cursor.last_block
            last_event = cursor.last_event
            if last_block is not None and last_block > before:
                last_block = before
            if last_event is not None and last_event[0] > before:
                last_event = (before, _LOG_INDEX_MAX)
            self.set_cursor(ChainCursor(last_block, last_event))
            self._revert_watched(event.blocks_reverted.first_block)
            self._revert_mined()
        else:
            key = (event.block_number, event.log_index)
            self.set_cursor(dataclasses.replace(cursor, last_event=key))

    def _apply_watch(self, watch: log_pb2.Watch) -> None:
        case = watch.WhichOneof("body")
        if case == "tower":
            self.journal.set(self.towers, address_from_bytes(watch.tower, "watch.tower"), None)
        elif case == "channel":
            client = address_from_bytes(watch.channel.client, "watch.channel.client")
            request = watch_request_from_proto(watch.channel.request)
            channel = request.channel_id
            known = self.watched.get(channel)
            had = known is not None and known.request_of(client) is not None
            if request.release:
                if known is not None and had:
                    left = known.without(client)
                    if left is None:
                        self.journal.delete(self.watched, channel)
                    else:
                        self.journal.set(self.watched, channel, left)
                    self._count_watched(client, -1)
                return
            if not had:
                self._count_watched(client, 1)
            if known is None:
                watched = WatchedChannel(((client, request),))
            else:
                watched = known.with_request(client, request)
            self.journal.set(self.watched, channel, watched)
        elif case == "event":
            event = watch.event
            self.set_cursor(
                dataclasses.replace(self.cursor, last_event=(event.block_number, event.log_index))
            )
            kind = event.WhichOneof("event")
            if kind is None:
                return
            channel = getattr(event, kind).channel_id
            known = self.watched.get(channel)
            if known is not None:
                self.journal.set(self.watched, channel, watched_after(known, event))

    def _count_watched(self, client: str, change: int) -> None:
        count = self.watch_counts.get(client, 0) + change
        if count:
            self.journal.set(self.watch_counts, client, count)
        else:
            self.journal.delete(self.watch_counts, client)

    def _revert_watched(self, first_block: int) -> None:
        """Forget what orphaned blocks said of watched channels (the watcher delivers
        the canonical events again)."""
        for channel, watched in list(self.watched.items()):
            if watched.event_block >= first_block:
                self.journal.set(self.watched, channel, watched.forget_chain())

    def _revert_mined(self) -> None:
        """What the chain mined for running objectives may have gone with replaced
        blocks: unconfirmed again, until the chain says it is mined (again)."""
        for key, hashes in list(self.mined.items()):
            self.journal.delete(self.mined, key)
            if key[0] in self.running:
                known = self.unconfirmed.get(key, ())
                merged = (*known, *(tx_hash for tx_hash in hashes if tx_hash not in known))
                self.journal.set(self.unconfirmed, key, merged)

    def _apply_transaction(self, tx: log_pb2.SubmittedTransaction) -> None:
        kind = TX_KIND_FROM_LOG.get(tx.tx_kind)
        if kind is None:
            return  # an approval: audit only
        try:
            objective_id = parse_objective_id(tx.objective_id)
        except InvalidValueError:
            return  # written by an older version under an id no objective has
        entry = self.objectives.get(objective_id)
        if entry is None:
            return
        asset = to_checksum_address(tx.asset, "asset") if tx.asset else None
        key: UnconfirmedKey = (objective_id, kind, tx.channel_id, asset)
        sent = self.unconfirmed.get(key, ())
        if tx.failed or tx.mined:
            self.journal.delete(self.unconfirmed, key)
            self.journal.delete(self.mined, key)
            if tx.mined:
                hashes = (*sent, *((tx.tx_hash,) if tx.tx_hash and tx.tx_hash not in sent else ()))
                self.journal.set(self.mined, key, hashes)
        elif tx.tx_hash:
            self.journal.delete(self.mined, key)  # sent again: this one is what counts
            self.journal.set(self.unconfirmed, key, (*sent, tx.tx_hash))
        if tx.mined:
            return  # the objective reads what it did from the chain's events
        event = (
            TransactionFailed(kind, tx.channel_id, asset)
            if tx.failed
            else TransactionSubmitted(kind, tx.channel_id, asset)
        )
        try:
            objective = update(entry.objective, event)
        except ProtocolError as error:
            logger.warning("%s: transaction record not applied: %s", objective_id, error)
            return
        self.put_entry(objective_id, dataclasses.replace(entry, objective=objective))

    def _apply_command(
        self,
        command: log_pb2.Command,
        previous: tuple[bytes, nitro_pb2.State] | None,
        time_ms: int,
    ) -> None:
        objective_id = parse_objective_id(command.objective_id)
        case = command.WhichOneof("command")
        if case == "objective_decision":
            self._apply_decision(objective_id, command.objective_decision, previous, time_ms)
            return
        objective = self._objective_of_command(objective_id, command)
        if objective is None:
            self.journal.set(self.closes_to_complete, objective_id, time_ms)
            return
        self.put_entry(objective_id, Entry(objective, created_ms=time_ms))

    def _objective_of_command(
        self, objective_id: ObjectiveId, command: log_pb2.Command
    ) -> Objective | None:
        case = command.WhichOneof("command")
        if case == "create_ledger_channel":
            create = command.create_ledger_channel
            fixed = fixed_part_from_proto(create.fixed)
            outcome = [single_asset_exit_from_proto(item) for item in create.outcome]
            return new_direct_fund(fixed, outcome, self.me, self.consensus_app)
        if case == "create_payment_channel":
            virtual = command.create_payment_channel
            fixed = fixed_part_from_proto(virtual.fixed)
            outcome = [single_asset_exit_from_proto(item) for item in virtual.outcome]
            return new_virtual_fund(fixed, outcome, self.me, self.payment_app)
        if case in ("close_ledger_channel", "close_payment_channel"):
            close = getattr(command, case)
            if not close.HasField("final_state"):
                return None
            final = state_from_proto(close.final_state)
            index = final.fixed.participants.index(self.me)
            if case == "close_ledger_channel":
                return DirectDefund(final, index)
            return VirtualDefund(final, index)
        if case == "defend_channel":
            fixed = fixed_part_from_proto(command.defend_channel.fixed)
            return Defend(fixed, fixed.participants.index(self.me))
        if case == "guard_channel":
            return Guard(fixed_part_from_proto(command.guard_channel.fixed))
        assert case == "settle_channel", case
        settle = command.settle_channel
        ledger = fixed_part_from_proto(settle.ledger)
        settlement = Settle(settle.channel_id, ledger, ledger.participants.index(self.me))
        assert settlement.id == objective_id, (settlement.id, objective_id)
        return settlement

    def _apply_decision(
        self,
        objective_id: ObjectiveId,
        decision: log_pb2.ObjectiveDecision,
        previous: tuple[bytes, nitro_pb2.State] | None,
        time_ms: int,
    ) -> None:
        entry = self.objectives.get(objective_id)
        if not decision.approved:
            if entry is not None:
                self.put_entry(objective_id, dataclasses.replace(entry, failure=decision.reason))
            return
        # A peer's proposal: the state it sent was logged just before the decision.
        assert previous is not None, objective_id
        assert previous[0] == objective_id.channel_id, objective_id
        proposer = (
            address_from_bytes(decision.proposer, "decision.proposer")
            if decision.proposer
            else None
        )
        objective = self._proposed(objective_id, state_from_proto(previous[1]))
        self.put_entry(objective_id, Entry(objective, created_ms=time_ms, proposer=proposer))

    def _proposed(self, objective_id: ObjectiveId, state: State) -> Objective:
        index = state.fixed.participants.index(self.me)
        match objective_id.kind:
            case ObjectiveKind.DIRECT_FUND:
                return new_direct_fund(state.fixed, state.outcome, self.me, self.consensus_app)
            case ObjectiveKind.VIRTUAL_FUND:
                return new_virtual_fund(state.fixed, state.outcome, self.me, self.payment_app)
            case ObjectiveKind.DIRECT_DEFUND:
                return DirectDefund(state, index)
            case ObjectiveKind.VIRTUAL_DEFUND:
                return VirtualDefund(state, index)
            case ObjectiveKind.SETTLE | ObjectiveKind.DEFEND | ObjectiveKind.GUARD:
                raise ProtocolError(f"{objective_id}: a dispute is never a peer's proposal")

    def complete_closes(self, snapshot_of: Callable[[bytes], ChannelSnapshot | None]) -> None:
        """Build the closes that older records logged without their final state, from
        the channels as the module now sees them (after a restart's catch-up)."""
        for objective_id, created_ms in list(self.closes_to_complete.items()):
            snapshot = snapshot_of(objective_id.channel_id)
            assert snapshot is not None, f"{objective_id}: a logged close of an unknown channel"
            objective: Objective
            if objective_id.kind is ObjectiveKind.DIRECT_DEFUND:
                objective = new_direct_defund(snapshot, self.me)
            else:
                latest = snapshot.latest_signed_by(0)
                if latest is not None and latest.state.is_final:
                    objective = VirtualDefund(latest.state, 0)
                else:
                    paid = self.paid.get(objective_id.channel_id, 0)
                    objective = new_virtual_defund(snapshot, self.me, paid)
            self.put_entry(objective_id, Entry(objective, created_ms=created_ms))
            self.journal.delete(self.closes_to_complete, objective_id)


def watched_after(entry: WatchedChannel, event: log_pb2.ChainEvent) -> WatchedChannel:
    """A watched channel after an adjudicator event of it."""
    kind = event.WhichOneof("event")
    block = event.block_number
    if kind == "challenge_registered":
        registered = event.challenge_registered
        if registered.HasField("candidate_part"):
            turn = registered.candidate_part.turn_num
        elif registered.HasField("candidate"):
            turn = registered.candidate.state.turn_num
        else:
            turn = 0  # not known: any supported state of ours is at least as late
        return dataclasses.replace(
            entry, challenge_turn=turn, finalizes_at=registered.finalizes_at, event_block=block
        )
    if kind == "challenge_cleared":
        finalizes_at = entry.finalizes_at if entry.concluded else 0
        return dataclasses.replace(
            entry, challenge_turn=None, finalizes_at=finalizes_at, event_block=block
        )
    if kind == "concluded":
        return dataclasses.replace(
            entry, concluded=True, finalizes_at=event.concluded.finalizes_at, event_block=block
        )
    return entry
