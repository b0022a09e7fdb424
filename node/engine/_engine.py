"""The engine: one trio loop from inputs to the log, the derivation, objectives and effects.

Each step drains the waiting inputs (up to a bound), validates them, appends
the records they cause as one batch (one fsync), lets the derivation module
fold them, cranks the objectives they touch, logs the states we signed, and
only then runs the effects: messages to peers, transactions, notifications.

A peer's messages are validated by ``inbound_records``, which the transport
calls before it acknowledges them, so that their records share the transport's
log write; their objectives are cranked when the delivery reaches the loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from node.chain import ChainService, Submitted
from node.core import (
    SignedState,
    Signer,
    address_from_bytes,
    channel_id,
    signed_state_from_proto,
    signed_state_to_proto,
    state_hash,
)
from node.core.constants import (
    chain_retry_interval_ms_max,
    engine_batch_inputs_max,
    engine_block_record_interval_ms,
    engine_crank_rounds_max,
    engine_inputs_max,
    engine_rejection_resend_ms,
    engine_rejection_resends_max,
    engine_tx_attempts_max,
    engine_tx_retry_ms,
    ledger_resend_interval_ms,
    log_batch_records_max,
    message_payloads_max,
    message_size_bytes_max,
    uint256_max,
)
from node.core.errors import ChainError, InvalidValueError, PeerFault, PeerStateError, ProtocolError
from node.derive import Deriver
from node.engine._commands import CommandsMixin
from node.engine._errors import CommandRefusedError
from node.engine._inputs import (
    ChainInput,
    CloseLedger,
    ClosePayment,
    CreateLedger,
    CreatePayment,
    Input,
    LedgerRequest,
    LedgerTick,
    PayRequest,
    PeerInput,
    VoucherHandedIn,
    Wake,
)
from node.engine._ledgers import LedgersMixin
from node.engine._payments import PaymentsMixin
from node.engine._records import (
    accepted_state_record,
    approve_record,
    chain_event_record,
    decision_record,
    rejected_record,
    submitted_record,
)
from node.engine._routing import Announced, RoutingMixin
from node.engine._table import Entry, finish_replay, replay_records
from node.engine._transport import DeliveryLike, Transport
from node.engine._views import ledger_channel_info, payment_channel_info, snapshot_from_view
from node.engine._virtual import VirtualMixin
from node.log import EventLog
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    ApprovalPolicy,
    ChannelSnapshot,
    CrankResult,
    DirectDefund,
    DirectFund,
    LedgerChannel,
    Objective,
    ObjectiveId,
    ObjectiveKind,
    PayeeVouchers,
    PayerVouchers,
    PaymentChannel,
    Proposal,
    ProposeLedgerUpdate,
    SendSignedState,
    SignLedgerProposal,
    StateReceived,
    SubmitConcludeAndTransfer,
    SubmitDeposit,
    TransactionFailed,
    TransactionKind,
    TransactionSubmitted,
    VirtualCrankResult,
    VirtualDefund,
    VirtualFund,
    VirtualObjective,
    crank,
    crank_virtual,
    direct_defund_from_final,
    direct_fund_from_prefund,
    parse_objective_id,
    update,
    update_virtual,
    virtual_fund_from_prefund,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.engine")

Notify = Callable[[str, Mapping[str, Any]], object]
TxKey = tuple[ObjectiveId, TransactionKind, str | None]
_REJECTION_REASONS = {
    PeerFault.MALFORMED: wire_pb2.REJECTION_REASON_MALFORMED,
    PeerFault.BAD_SIGNATURE: wire_pb2.REJECTION_REASON_BAD_SIGNATURE,
    PeerFault.WRONG_TURN: wire_pb2.REJECTION_REASON_WRONG_TURN,
    PeerFault.UNKNOWN_CHANNEL: wire_pb2.REJECTION_REASON_UNKNOWN_CHANNEL,
    PeerFault.NOT_A_PARTICIPANT: wire_pb2.REJECTION_REASON_NOT_A_PARTICIPANT,
    PeerFault.STALE_VOUCHER: wire_pb2.REJECTION_REASON_STALE_VOUCHER,
    PeerFault.INSUFFICIENT_FUNDS: wire_pb2.REJECTION_REASON_INSUFFICIENT_FUNDS,
    PeerFault.CHANNEL_NOT_OPEN: wire_pb2.REJECTION_REASON_CHANNEL_NOT_OPEN,
}


@dataclass(frozen=True)
class EngineConfig:
    """What the engine is told at start.

    Attributes:
        consensus_app: the ConsensusApp's address (ledger channels' app).
        policy: decides on objectives peers propose.
        confirmations: blocks an event needs before it is logged.
        start_block: first block to watch on a fresh log.
        tx_retry_ms: wait before a refused transaction is asked for again.
        payment_app: the VirtualPaymentApp's address ("": no virtual channels).
    """

    consensus_app: str
    policy: ApprovalPolicy
    confirmations: int = 0
    start_block: int = 0
    tx_retry_ms: int = engine_tx_retry_ms
    payment_app: str = ""


class _PolicyRefusal(ProtocolError):
    """Our policy declined an objective a peer proposed."""


class Engine(CommandsMixin, LedgersMixin, VirtualMixin, PaymentsMixin, RoutingMixin):
    """One node's engine. ``Engine.open`` rebuilds it from the log; ``run`` serves.

    Args:
        log: the node's event log (this engine writes its records there).
        deriver: the derivation module over that log.
        signer: the node key.
        chain: the chain service (None: no chain; transactions are not sent).
        config: see ``EngineConfig``.
        notify: receives notifications (``RpcServer.publish``).
    """

    def __init__(
        self,
        *,
        log: EventLog,
        deriver: Deriver,
        signer: Signer,
        chain: ChainService | None,
        config: EngineConfig,
        notify: Notify | None = None,
    ) -> None:
        self.log = log
        self.deriver = deriver
        self.signer = signer
        self.address = signer.address
        self.chain = chain
        self.config = config
        self.consensus_app = config.consensus_app
        self.payment_app = config.payment_app
        self.notify = notify
        self.transport: Transport | None = None
        self.announced: Announced | None = None
        self.on_ledgers_changed: Callable[[], object] | None = None  # a ledger opened or closed
        self.objectives: dict[ObjectiveId, Entry] = {}
        self._inputs_send, self._inputs = trio.open_memory_channel[Input](engine_inputs_max)
        self._dirty: set[ObjectiveId] = set()
        self._outgoing: list[tuple[str, wire_pb2.Payload]] = []
        self._resend_due: set[ObjectiveId] = set()
        self._rejection_resends: dict[ObjectiveId, int] = {}
        self._changed: set[ObjectiveId] = set()  # finished or failed since the last notice
        self._inflight: set[TxKey] = set()
        self._attempts: dict[TxKey, int] = {}
        self._retry_at: dict[TxKey, float] = {}
        self._notified_seq: dict[bytes, int] = {}
        self._events: dict[ObjectiveId, trio.Event] = {}
        self._chain_ready_block: int | None = None
        self._last_block_logged_at = -math.inf
        self._pending_block = False  # an event was logged: log the next block mark too
        self._nursery: trio.Nursery | None = None
        self._ledgers: dict[bytes, LedgerChannel] = {}
        self._ledger_wanted: dict[bytes, list[Proposal]] = {}
        self._payers: dict[bytes, PayerVouchers] = {}
        self._payees: dict[bytes, PayeeVouchers] = {}
        self._open_channels: dict[bytes, PaymentChannel] = {}
        self._voucher_touched: set[bytes] = set()
        self._voucher_resends: dict[bytes, int] = {}
        self._voucher_resend_due: set[bytes] = set()
        self._rebuild()

    # ------------------------------------------------------------------ start

    def _rebuild(self) -> None:
        """Objectives from the log: the module folds the records, the table replays them."""
        self.deriver.catch_up()
        replay = replay_records(
            self.log.read(), self.address, self.config.consensus_app, self.payment_app
        )
        self.objectives = finish_replay(replay, self.snapshot, self.address, self._paid_of)
        self._from_block = (
            replay.last_block + 1 if replay.last_block is not None else self.config.start_block
        )
        self._after_event = replay.last_event
        self._dirty = {oid for oid, entry in self.objectives.items() if entry.running}
        self._outgoing.extend(self._resends())
        self._replay_ledgers(self.log.read())
        self._replay_vouchers(self.log.read())
        self._outgoing.extend(self._ledger_resends())
        for oid, entry in self.objectives.items():
            if entry.failure is not None:
                self._event(oid).set()
        logger.info(
            "engine %s: %d objectives from %d records (%d running)",
            self.address,
            len(self.objectives),
            self.log.last_seq,
            len(self._dirty),
        )

    def snapshot(self, channel: bytes) -> ChannelSnapshot | None:
        """What the derivation module says of ``channel`` (None: it knows no such channel)."""
        view = self.deriver.channel(channel)
        return snapshot_from_view(view) if view is not None else None

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the chain, pump the transport, and run the loop until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if self.chain is not None:
                head = await self.chain.block_number() - self.config.confirmations
                # Transactions wait until the watcher has back-filled to the head: a
                # deposit computed from stale holdings would only be refused.
                self._chain_ready_block = head if head >= self._from_block else None
                await nursery.start(self._watch_chain)
            if self.transport is not None:
                nursery.start_soon(self._pump_deliveries, self.transport.deliveries)
                interval_s = ledger_resend_interval_ms / 1000
                nursery.start_soon(self._ledger_ticks, self._inputs_send, interval_s)
            task_status.started()
            await self._loop()

    async def _watch_chain(
        self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        assert self.chain is not None

        async def deliver(event: log_pb2.ChainEvent) -> None:
            await self._inputs_send.send(ChainInput(event))

        while True:
            try:
                await self.chain.run(
                    deliver,
                    from_block=self._from_block,
                    after=self._after_event,
                    confirmations=self.config.confirmations,
                    task_status=task_status,
                )
            except ChainError as error:
                # The chain failed us (an RPC error, a deep reorg): watch again from
                # what the log holds; events already logged are skipped.
                logger.error("chain watcher stopped: %s; restarting it", error)
                task_status = trio.TASK_STATUS_IGNORED
                await trio.sleep(chain_retry_interval_ms_max / 1000)

    async def _pump_deliveries(self, deliveries: trio.abc.ReceiveChannel[DeliveryLike]) -> None:
        async for delivery in deliveries:
            paid_on = frozenset(
                payload.voucher.channel_id
                for envelope in delivery.envelopes
                for payload in envelope.payloads
                if payload.HasField("voucher")
            )
            await self._inputs_send.send(
                PeerInput(delivery.sender, len(delivery.envelopes), paid_on)
            )

    def _event(self, objective_id: ObjectiveId) -> trio.Event:
        if objective_id not in self._events:
            self._events[objective_id] = trio.Event()
        return self._events[objective_id]

    async def update_ledger(self, effect: ProposeLedgerUpdate | SignLedgerProposal) -> None:
        """Propose a ledger change (leader) or agree to countersign it (follower).

        Returns once the loop has logged what the request caused; the change
        itself completes when the other party answers.

        Raises:
            CommandRefusedError: no such open ledger, the wrong role, or a
                proposal that does not fit the ledger.
        """
        request = LedgerRequest(effect)
        await self._inputs_send.send(request)
        await request.done.wait()
        if request.error is not None:
            raise request.error

    async def wait_objective(self, objective_id: ObjectiveId) -> Entry:
        """Wait until ``objective_id`` is done or failed; returns its entry."""
        await self._event(objective_id).wait()
        return self.objectives[objective_id]

    # ------------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        while True:
            inputs = [await self._inputs.receive()] if not self._dirty else []
            while len(inputs) < engine_batch_inputs_max:
                try:
                    inputs.append(self._inputs.receive_nowait())
                except trio.WouldBlock:
                    break
            sends, transactions = self._step(inputs)
            await self._run_effects(sends, transactions)

    def _step(
        self, inputs: Sequence[Input]
    ) -> tuple[list[tuple[str, wire_pb2.Payload]], list[tuple[ObjectiveId, object]]]:
        """Validate, append, derive and crank: everything but the effects (no awaits)."""
        records: list[log_pb2.LogRecord] = []
        replies: list[CreateLedger | CloseLedger | CreatePayment | ClosePayment] = []
        answered: list[LedgerRequest | PayRequest | VoucherHandedIn] = []
        for item in inputs:
            match item:
                case CreateLedger() | CloseLedger() | CreatePayment() | ClosePayment():
                    records.append(self._command(item))
                    if not item.reply.done.is_set():
                        replies.append(item)
                case ChainInput():
                    records.extend(self._chain_records(item.event))
                case LedgerRequest():
                    try:
                        records.extend(self._ledger_request(item.effect))
                    except CommandRefusedError as error:
                        item.error = error
                    answered.append(item)
                case PayRequest():
                    try:
                        records.extend(self._pay(item))
                    except CommandRefusedError as error:
                        item.error = error
                    answered.append(item)
                case VoucherHandedIn():
                    try:
                        records.extend(self._voucher_handed_in(item))
                    except CommandRefusedError as error:
                        item.error = error
                    answered.append(item)
                case LedgerTick():
                    self._outgoing.extend(self._ledger_resends())
                case PeerInput():
                    self._voucher_touched.update(item.paid_on)
                case Wake():
                    pass
        if self._voucher_resend_due:
            self._resend_vouchers()
        if self._resend_due:
            due = {str(objective_id) for objective_id in self._resend_due}
            self._resend_due.clear()
            self._outgoing.extend(s for s in self._resends() if s[1].objective_id in due)
        self._append(records)
        for request in answered:
            request.done.set()
        for item in replies:
            assert item.reply.objective_id is not None
            item.reply.done.set()
        sends, transactions = self._crank_dirty()
        self._notify_changes()
        return sends, transactions

    def _append(self, records: Sequence[log_pb2.LogRecord]) -> None:
        """Append durably and let the module fold what is new in the log."""
        for start in range(0, len(records), log_batch_records_max):
            self.log.append_batch(records[start : start + log_batch_records_max])
        self.deriver.catch_up()

    # ------------------------------------------------------------------ chain events

    def _chain_records(self, event: log_pb2.ChainEvent) -> list[log_pb2.LogRecord]:
        """The record of an event that concerns our channels, or of a block mark."""
        case = event.WhichOneof("event")
        if case == "block_processed":
            return self._block_records(event)
        key = (event.block_number, event.log_index)
        if self._after_event is not None and key <= self._after_event:
            return []  # delivered again by a restarted watcher: logged already
        channel = getattr(event, case).channel_id if case is not None else b""
        touched = [oid for oid in self.objectives if oid.channel_id == channel]
        if not touched and self.deriver.channel(channel) is None:
            logger.debug("chain event %s for channel 0x%s: not ours", case, channel.hex())
            return []
        self._dirty.update(oid for oid in touched if self.objectives[oid].running)
        if case in ("challenge_registered", "concluded"):
            # Disputed or settling on chain: no more vouchers, no more ledger proposals.
            self._open_channels.pop(channel, None)
            self._ledgers.pop(channel, None)
        self._pending_block = True
        self._after_event = (event.block_number, event.log_index)
        return [chain_event_record(event)]

    def _block_records(self, event: log_pb2.ChainEvent) -> list[log_pb2.LogRecord]:
        block = event.block_processed.block_number
        ready = self._chain_ready_block
        if ready is not None and block >= ready:
            self._chain_ready_block = None
            self._dirty.update(oid for oid, entry in self.objectives.items() if entry.running)
            logger.info("engine %s: chain caught up at block %d", self.address, block)
        now = trio.current_time()
        interval = engine_block_record_interval_ms / 1000
        if not self._pending_block and now - self._last_block_logged_at < interval:
            return []
        self._pending_block = False
        self._last_block_logged_at = now
        self._from_block = block + 1
        return [chain_event_record(event)]

    @property
    def chain_ready(self) -> bool:
        """Whether the watcher has back-filled to the head seen at start."""
        return self._chain_ready_block is None

    # ------------------------------------------------------------------ cranking

    def _crank_dirty(
        self,
    ) -> tuple[list[tuple[str, wire_pb2.Payload]], list[tuple[ObjectiveId, object]]]:
        """Crank until no objective asks to sign anything new; log what we signed."""
        sends: list[tuple[str, wire_pb2.Payload]] = []
        transactions: list[tuple[ObjectiveId, object]] = []
        for _ in range(engine_crank_rounds_max):
            dirty, self._dirty = self._dirty, set()
            if not dirty:
                break
            signed: dict[bytes, SignedState] = {}
            ledger_records: list[log_pb2.LogRecord] = []
            for objective_id in sorted(dirty, key=str):
                for effect in self._crank_one(objective_id):
                    if isinstance(effect, SendSignedState):
                        self._open_channels.pop(objective_id.channel_id, None)
                        signed[state_hash(effect.signed_state.state)] = effect.signed_state
                        payload = wire_pb2.Payload(
                            objective_id=str(effect.objective_id),
                            signed_state=signed_state_to_proto(effect.signed_state),
                        )
                        sends.append((effect.recipient, payload))
                        self._dirty.add(objective_id)
                    elif isinstance(effect, ProposeLedgerUpdate | SignLedgerProposal):
                        ledger_records.extend(self._ledger_effect(objective_id, effect))
                    else:
                        transactions.append((objective_id, effect))
            # Our signatures are logged before any message carrying them leaves.
            self._append(
                [accepted_state_record(state) for state in signed.values()] + ledger_records
            )
        else:
            # Our bug, not an input's: say so, and do not spin on it.
            logger.error("engine: objectives %s did not settle", sorted(map(str, self._dirty)))
            self._dirty.clear()
        return sends, transactions

    def _crank_one(self, objective_id: ObjectiveId) -> Sequence[object]:
        entry = self.objectives.get(objective_id)
        if entry is None or not entry.running:
            return ()
        snapshot = self.snapshot(objective_id.channel_id) or ChannelSnapshot(entry.objective.fixed)
        try:
            result: CrankResult[object] | VirtualCrankResult[object]
            if isinstance(entry.objective, DirectFund | DirectDefund):
                result = crank(entry.objective, snapshot, self.signer)
            else:
                virtual = self._virtual_snapshot(entry.objective, snapshot)
                result = crank_virtual(entry.objective, virtual, self.signer)
        except ProtocolError as error:
            self._fail(objective_id, f"crank: {error}")
            return ()
        before = entry.waiting_for
        assert isinstance(result.objective, type(entry.objective))
        entry.objective = result.objective
        entry.waiting_for = result.waiting_for
        if before is not result.waiting_for:
            logger.info("%s: waiting for %s", objective_id, result.waiting_for.value)
        if result.done:
            self._changed.add(objective_id)
        return result.effects

    def _fail(self, objective_id: ObjectiveId, reason: str) -> None:
        """Give up an objective, for the log and for whoever waits on it."""
        logger.warning("%s failed: %s", objective_id, reason)
        self._append([decision_record(objective_id, approved=False, reason=reason)])
        self.objectives[objective_id].failure = reason
        self._changed.add(objective_id)

    def _resends(self) -> list[tuple[str, wire_pb2.Payload]]:
        """After a restart: our latest state of each running objective, to every peer.

        A crash between logging our signature and handing the message to the
        transport would lose it; the peer de-duplicates what it already has.
        """
        sends: list[tuple[str, wire_pb2.Payload]] = []
        for objective_id, entry in sorted(self.objectives.items(), key=lambda item: str(item[0])):
            if not entry.running:
                continue
            snapshot = self.snapshot(objective_id.channel_id)
            if snapshot is None:
                continue
            me = entry.objective.my_index
            latest = snapshot.latest_signed_by(me)
            if latest is None or not _belongs(entry.objective, latest):
                continue
            payload = wire_pb2.Payload(
                objective_id=str(objective_id), signed_state=signed_state_to_proto(latest)
            )
            participants = entry.objective.fixed.participants
            sends.extend((peer, payload) for peer in participants if peer != self.address)
        return sends

    # ------------------------------------------------------------------ effects

    async def _run_effects(
        self,
        sends: Sequence[tuple[str, wire_pb2.Payload]],
        transactions: Sequence[tuple[ObjectiveId, object]],
    ) -> None:
        outgoing, self._outgoing = [*sends, *self._outgoing], []
        by_peer: dict[str, list[wire_pb2.Payload]] = {}
        for recipient, payload in outgoing:
            by_peer.setdefault(recipient, []).append(payload)
        for recipient, payloads in by_peer.items():
            for message in message_chunks(payloads):
                await self._send(recipient, message)
        for objective_id, effect in transactions:
            self._start_transaction(objective_id, effect)

    async def _send(self, recipient: str, payloads: Sequence[wire_pb2.Payload]) -> None:
        if self.transport is None:
            logger.warning("no transport: %d payloads to %s not sent", len(payloads), recipient)
            return
        try:
            await self.transport.send(recipient, payloads)
        except InvalidValueError as error:
            logger.error("message to %s not sent: %s", recipient, error)

    def _start_transaction(self, objective_id: ObjectiveId, effect: object) -> None:
        if isinstance(effect, SubmitDeposit):
            key: TxKey = (objective_id, TransactionKind.DEPOSIT, effect.asset)
        else:
            assert isinstance(effect, SubmitConcludeAndTransfer)
            key = (objective_id, TransactionKind.CONCLUDE_AND_TRANSFER, None)
        if self.chain is None or not self.chain_ready or key in self._inflight:
            return
        wait_s = self._retry_at.get(key, -math.inf) - trio.current_time()
        if wait_s > 0:
            assert self._nursery is not None
            self._nursery.start_soon(self._wake_after, wait_s, f"retry {objective_id}")
            return
        self._inflight.add(key)
        assert self._nursery is not None
        self._nursery.start_soon(self._transact, key, effect)

    def _resend_after_rejection(self, objective_id: ObjectiveId) -> None:
        """Offer our latest state again soon: the peer may have judged it too early."""
        attempts = self._rejection_resends.get(objective_id, 0)
        if attempts >= engine_rejection_resends_max or self._nursery is None:
            return
        self._rejection_resends[objective_id] = attempts + 1
        self._nursery.start_soon(self._resend_later, objective_id)

    async def _resend_later(self, objective_id: ObjectiveId) -> None:
        await trio.sleep(engine_rejection_resend_ms / 1000)
        self._resend_due.add(objective_id)
        await self._inputs_send.send(Wake(f"resend {objective_id}"))

    async def _wake_after(self, seconds: float, reason: str) -> None:
        await trio.sleep(seconds)
        await self._inputs_send.send(Wake(reason))

    async def _transact(self, key: TxKey, effect: object) -> None:
        """Submit one transaction; its record is logged as soon as it is sent."""
        objective_id, kind, asset = key
        assert self.chain is not None
        amount = effect.amount if isinstance(effect, SubmitDeposit) else 0
        sent: list[Submitted] = []

        async def on_submitted(submitted: Submitted) -> None:
            channel = objective_id.channel_id
            if submitted.operation == "approve":
                record = approve_record(
                    objective_id, channel=channel, tx_hash=submitted.tx_hash, nonce=submitted.nonce
                )
                self._append([record])
                return
            sent.append(submitted)
            self._apply_tx(
                objective_id,
                TransactionSubmitted(kind, channel, asset),
                submitted_record(
                    objective_id,
                    kind,
                    channel=channel,
                    tx_hash=submitted.tx_hash,
                    nonce=submitted.nonce,
                    asset=asset,
                    amount=amount,
                ),
            )

        try:
            if isinstance(effect, SubmitDeposit):
                logger.info("%s: depositing %d of %s", objective_id, amount, asset)
                await self.chain.deposit(
                    effect.asset,
                    effect.channel_id,
                    effect.expected_held,
                    effect.amount,
                    on_submitted=on_submitted,
                )
            else:
                assert isinstance(effect, SubmitConcludeAndTransfer)
                logger.info("%s: concluding and paying out", objective_id)
                await self.chain.conclude_and_transfer_all_assets(
                    effect.signed_final, on_submitted=on_submitted
                )
        except ChainError as error:
            self._transaction_failed(key, sent[-1] if sent else None, str(error))
        finally:
            self._inflight.discard(key)
        await self._inputs_send.send(Wake(f"transaction of {objective_id}"))

    def _apply_tx(
        self, objective_id: ObjectiveId, event: object, record: log_pb2.LogRecord
    ) -> None:
        self._append([record])
        entry = self.objectives.get(objective_id)
        if entry is not None and isinstance(entry.objective, DirectFund | DirectDefund):
            assert isinstance(event, TransactionSubmitted | TransactionFailed)
            entry.objective = update(entry.objective, event)

    def _transaction_failed(self, key: TxKey, submitted: Submitted | None, reason: str) -> None:
        objective_id, kind, asset = key
        logger.warning("%s: %s transaction refused: %s", objective_id, kind.value, reason)
        record = submitted_record(
            objective_id,
            kind,
            channel=objective_id.channel_id,
            tx_hash=submitted.tx_hash if submitted else b"",
            nonce=submitted.nonce if submitted else 0,
            asset=asset,
            failure=reason,
        )
        self._apply_tx(
            objective_id, TransactionFailed(kind, objective_id.channel_id, asset), record
        )
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        self._retry_at[key] = trio.current_time() + self.config.tx_retry_ms / 1000
        entry = self.objectives.get(objective_id)
        if attempts >= engine_tx_attempts_max and entry is not None and entry.running:
            self._fail(objective_id, f"{kind.value} refused {attempts} times: {reason}")
        else:
            self._dirty.add(objective_id)

    # ------------------------------------------------------------------ notifications

    def _notify_changes(self) -> None:
        changed, self._changed = self._changed, set()
        # Vouchers a peer sent count once their delivery reaches the loop (PeerInput), after
        # the transport's receipt write: validation runs before it, so a step in between
        # would see the channel unchanged and use up its notice.
        touched = {oid.channel_id for oid in changed} | self._voucher_touched
        self._voucher_touched = set()
        touched.update(oid.channel_id for oid, e in self.objectives.items() if e.running)
        for channel in sorted(touched):
            view = self.deriver.channel(channel)
            if view is None or self._notified_seq.get(channel) == view.last_seq:
                continue
            self._notified_seq[channel] = view.last_seq
            if self._is_virtual(view.fixed.app_definition):
                self._publish("payment_channel_updated", payment_channel_info(view, self.address))
            else:
                self._publish("ledger_channel_updated", ledger_channel_info(view, self.address))
        ledger_kinds = (ObjectiveKind.DIRECT_FUND, ObjectiveKind.DIRECT_DEFUND)
        if self.on_ledgers_changed is not None and any(o.kind in ledger_kinds for o in changed):
            self.on_ledgers_changed()
        for objective_id in sorted(changed, key=str):
            entry = self.objectives[objective_id]
            name = "objective_completed" if entry.failure is None else "objective_failed"
            self._publish(name, self.objective_info(objective_id))
            self._event(objective_id).set()

    def _publish(self, method: str, params: Mapping[str, object]) -> None:
        if self.notify is not None:
            self.notify(method, params)

    def objective_info(self, objective_id: ObjectiveId) -> dict[str, object]:
        """An objective as JSON for the API."""
        entry = self.objectives[objective_id]
        waiting = entry.waiting_for.value if entry.waiting_for is not None else None
        status = "FAILED" if entry.failure else "DONE" if entry.done else "RUNNING"
        return {
            "id": str(objective_id),
            "kind": objective_id.kind.value,
            "channel_id": "0x" + objective_id.channel_id.hex(),
            "status": status,
            "waiting_for": waiting,
            "failure": entry.failure,
        }

    # ------------------------------------------------------------------ peers

    def inbound_records(
        self, sender: bytes, envelopes: Sequence[wire_pb2.Envelope]
    ) -> list[log_pb2.LogRecord]:
        """Validate a peer's envelopes; the records the transport logs with them.

        Called by the transport before it acknowledges the envelopes. Never
        raises on peer input: a bad payload becomes a Rejected record, a log
        line and a Rejection sent back.
        """
        try:
            peer = address_from_bytes(sender, "sender")
        except InvalidValueError as error:
            logger.warning("rejected envelopes from a bad sender address: %s", error)
            return []
        records: list[log_pb2.LogRecord] = []
        for envelope in envelopes:
            for payload in envelope.payloads:
                records.extend(self._peer_payload(peer, envelope.id, payload))
        return records

    def _peer_payload(
        self, peer: str, message_id: int, payload: wire_pb2.Payload
    ) -> list[log_pb2.LogRecord]:
        body = payload.WhichOneof("body")
        if body == "rejection":
            return self._peer_rejection(peer, payload)
        try:
            if body == "voucher":
                return self._peer_voucher(peer, payload)
            if body == "ledger_proposal":
                self._touch_virtual()
                return self._peer_ledger_proposal(peer, payload)
            if body != "signed_state":
                raise PeerStateError(PeerFault.MALFORMED, f"payload {body}: not handled here")
            return self._peer_state(peer, payload)
        except _PolicyRefusal as error:
            return self._reject(peer, message_id, payload, wire_pb2.REJECTION_REASON_POLICY, error)
        except PeerStateError as error:
            return self._reject(peer, message_id, payload, _REJECTION_REASONS[error.fault], error)
        except (InvalidValueError, ProtocolError) as error:
            return self._reject(
                peer, message_id, payload, wire_pb2.REJECTION_REASON_MALFORMED, error
            )
        except Exception as error:
            # Our bug, but a peer's input must never stop the node: refuse it loudly.
            logger.exception("internal error on a payload from %s", peer)
            return self._reject(
                peer, message_id, payload, wire_pb2.REJECTION_REASON_MALFORMED, error
            )

    def _reject(
        self,
        peer: str,
        message_id: int,
        payload: wire_pb2.Payload,
        reason: int,
        error: Exception,
    ) -> list[log_pb2.LogRecord]:
        name = wire_pb2.RejectionReason.Name(reason).removeprefix("REJECTION_REASON_")
        problem = str(error) if str(error).startswith(name) else f"{name}: {error}"
        logger.warning(
            "rejected a message from %s (objective %r): %s",
            peer,
            payload.objective_id[:100],
            problem,
        )
        answer = wire_pb2.Payload(objective_id=payload.objective_id[:200])
        answer.rejection.message_id = message_id
        answer.rejection.reason = reason  # type: ignore[assignment]
        answer.rejection.detail = str(error)[:1000]
        self._outgoing.append((peer, answer))
        return [
            rejected_record(
                log_pb2.REJECTION_SOURCE_PEER,
                problem,
                payload.SerializeToString(),
                bytes.fromhex(peer[2:]),
            )
        ]

    def _peer_state(self, peer: str, payload: wire_pb2.Payload) -> list[log_pb2.LogRecord]:
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
        self._open_channels.pop(objective_id.channel_id, None)
        entry = self.objectives.get(objective_id)
        records = []
        if entry is None:
            records = self._peer_proposal(objective_id, event)
        elif entry.failure is not None:
            raise _PolicyRefusal(f"{objective_id} failed: {entry.failure}")
        else:
            if isinstance(entry.objective, DirectFund | DirectDefund):
                entry.objective = update(entry.objective, event)
            else:
                entry.objective = update_virtual(entry.objective, event)
            records = [accepted_state_record(signed)]
        self._dirty.add(objective_id)
        return records

    def _peer_proposal(
        self, objective_id: ObjectiveId, event: StateReceived
    ) -> list[log_pb2.LogRecord]:
        """A peer's first state of an objective we do not run: build it, ask the policy."""
        channel = objective_id.channel_id
        others = [oid for oid, e in self.objectives.items() if oid.channel_id == channel]
        objective: Objective
        if objective_id.kind is ObjectiveKind.DIRECT_FUND:
            if others or self.deriver.channel(channel) is not None:
                raise PeerStateError(
                    PeerFault.MALFORMED, f"channel 0x{channel.hex()} exists: no second funding"
                )
            objective = direct_fund_from_prefund(event, self.address, self.config.consensus_app)
        elif objective_id.kind is ObjectiveKind.DIRECT_DEFUND:
            snapshot = self.snapshot(channel)
            if snapshot is None:
                raise PeerStateError(
                    PeerFault.UNKNOWN_CHANNEL, f"no channel 0x{channel.hex()} to close"
                )
            if any(self.objectives[oid].running for oid in others):
                raise PeerStateError(
                    PeerFault.WRONG_TURN, f"channel 0x{channel.hex()} is still being funded"
                )
            objective = direct_defund_from_final(snapshot, self.address, event)
        elif objective_id.kind is ObjectiveKind.VIRTUAL_FUND and self.payment_app:
            if others:
                raise PeerStateError(
                    PeerFault.MALFORMED, f"channel 0x{channel.hex()} exists: no second funding"
                )
            virtual = virtual_fund_from_prefund(event, self.address, self.payment_app)
            self._approve(virtual)
            return self._accept_virtual(virtual, event)
        elif objective_id.kind is ObjectiveKind.VIRTUAL_DEFUND and self.payment_app:
            return self._peer_virtual_close(objective_id, event, others)
        else:
            # Kinds this node does not run: refuse, never misread.
            raise PeerStateError(
                PeerFault.MALFORMED, f"objective kind {objective_id.kind.value} is not supported"
            )
        check_totals(objective)
        self._approve(objective)
        logger.info("approved %s proposed by %s", objective_id, event.sender)
        self.objectives[objective_id] = Entry(objective)
        return [
            accepted_state_record(event.signed_state),
            decision_record(objective_id, approved=True, reason=""),
        ]

    def _approve(self, objective: Objective | VirtualObjective) -> None:
        decision = self.config.policy(objective)
        if not decision.approved:
            raise _PolicyRefusal(f"policy: {decision.reason}")

    def _peer_rejection(self, peer: str, payload: wire_pb2.Payload) -> list[log_pb2.LogRecord]:
        rejection = payload.rejection
        name = wire_pb2.RejectionReason.Name(rejection.reason)
        logger.warning(
            "%s rejected our message %d (objective %r): %s: %s",
            peer,
            rejection.message_id,
            payload.objective_id[:100],
            name,
            rejection.detail[:1000],
        )
        try:
            objective_id = parse_objective_id(payload.objective_id)
        except InvalidValueError:
            return []
        if (
            rejection.reason == wire_pb2.REJECTION_REASON_CHANNEL_NOT_OPEN
            and objective_id.kind is ObjectiveKind.VIRTUAL_FUND
        ):
            self._voucher_refused_early(peer, objective_id.channel_id)
        entry = self.objectives.get(objective_id)
        if entry is None or not entry.running or peer not in entry.objective.fixed.participants:
            return []
        if rejection.reason != wire_pb2.REJECTION_REASON_POLICY:
            self._resend_after_rejection(objective_id)
            return []
        reason = f"refused by {peer}: {rejection.detail[:1000]}"
        entry.failure = reason
        self._changed.add(objective_id)
        return [decision_record(objective_id, approved=False, reason=reason)]


# Room for an Envelope's id, addresses and each payload's tag and length.
_ENVELOPE_OVERHEAD_BYTES = 128
_PAYLOAD_OVERHEAD_BYTES = 8


def message_chunks(payloads: Sequence[wire_pb2.Payload]) -> list[list[wire_pb2.Payload]]:
    """``payloads`` in order, cut into messages within the count and size bounds."""
    room = message_size_bytes_max - _ENVELOPE_OVERHEAD_BYTES
    chunks: list[list[wire_pb2.Payload]] = [[]]
    size = 0
    for payload in payloads:
        payload_size = payload.ByteSize() + _PAYLOAD_OVERHEAD_BYTES
        full = len(chunks[-1]) >= message_payloads_max or size + payload_size > room
        if chunks[-1] and full:
            chunks.append([])
            size = 0
        chunks[-1].append(payload)
        size += payload_size
    return [chunk for chunk in chunks if chunk]


def check_totals(objective: Objective) -> None:
    """Every asset's outcome must fit the adjudicator's uint256 holdings.

    Raises:
        PeerStateError: an outcome whose total overflows.
    """
    state = objective.setup_state(0) if isinstance(objective, DirectFund) else objective.final_state
    for asset_exit in state.outcome:
        total = sum(allocation.amount for allocation in asset_exit.allocations)
        if total > uint256_max:
            raise PeerStateError(
                PeerFault.MALFORMED, f"outcome[{asset_exit.asset}]: the total exceeds uint256"
            )


def _belongs(objective: Objective | VirtualObjective, latest: SignedState) -> bool:
    """Whether ``latest`` is a state ``objective`` sends (so a peer expects it)."""
    if isinstance(objective, DirectFund | VirtualFund):
        return latest.state in (objective.setup_state(0), objective.setup_state(1))
    assert isinstance(objective, DirectDefund | VirtualDefund)
    return latest.state == objective.final_state
