"""The engine: one trio loop, the only writer of the event log and owner of node state.

Every input (a command, a peer's messages, a chain event, a transaction's
outcome, a timer) reaches the loop as a value. One step drains a bounded batch
of inputs, validates each against the current state, builds the records it
causes (each folded into the engine state at once, and into the derivation
module before the objectives are cranked), cranks the objectives touched, makes
messages of what is to be sent, and appends every record in one batch with one
fsync. Then the effects run: messages leave, peers get their acks, transactions
start, callers get answers, notifications go out. A failed append rolls the
state and the module back to what the log holds and runs none of it
(docs/adr/0006-engine-loop.md).

A restart loads the newest snapshot of the engine state and of the module
taken at the same sequence number and folds only the records after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, assert_never

import trio

from node.core import Signer, address_to_bytes
from node.core.constants import (
    derive_snapshot_interval_records,
    engine_batch_inputs_max,
    engine_expiry_check_s,
    engine_inputs_max,
    engine_peer_backoff_s,
    engine_refused_peer_pause_ms,
    ledger_resend_interval_ms,
)
from node.core.errors import DeriveError, InvalidValueError, LogError
from node.derive import DeriveModule, Deriver
from node.engine._budgets import BudgetsMixin
from node.engine._chain_side import ChainMixin
from node.engine._clock import engine_clock
from node.engine._commands import CommandsMixin
from node.engine._config import EngineConfig
from node.engine._cranking import CrankingMixin
from node.engine._disputes import DisputesMixin
from node.engine._errors import EngineFatalError
from node.engine._inputs import (
    AddWatchtower,
    ChainInput,
    CloseLedger,
    ClosePayment,
    CreateLedger,
    CreatePayment,
    HandInVoucher,
    Input,
    Pay,
    PeerMessages,
    Query,
    SettleChannel,
    Timer,
    TxFinished,
    TxSubmitted,
    UpdateLedger,
)
from node.engine._ledgers import LedgersMixin
from node.engine._messages import build_messages
from node.engine._metering import meter_commit, meter_step
from node.engine._notices import NoticesMixin, Notify
from node.engine._payments import PaymentsMixin
from node.engine._peers import PeersMixin
from node.engine._queries import QueriesMixin
from node.engine._records import now_ms
from node.engine._routing import Announced, RoutingMixin
from node.engine._state import EngineState, Entry
from node.engine._state_codec import ENGINE_SNAPSHOT_KEY, decode_state, encode_state
from node.engine._step import Step
from node.engine._tower import WatchtowerMixin
from node.engine._transport import Transport
from node.engine._views import ViewCache
from node.log import EventLog, Snapshot
from node.proto import log_pb2
from node.protocols import ObjectiveId

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from node.chain import ChainService
    from node.metrics import Metrics

logger = logging.getLogger("node.engine")

# Steps whose write fails in a row before the engine gives up: the disk is gone.
_COMMIT_FAILURES_MAX: Final = 3
# Inputs with no caller waiting: after a step the module failed, each is taken again
# in a step of its own (a command's caller was told the step failed).
_RETRIED: Final = (PeerMessages, ChainInput, TxSubmitted, TxFinished, Timer)
# A write of more records than this leaves the trio thread (the fsync releases the GIL,
# so the network and the API go on meanwhile); smaller ones are not worth the hop.
_INLINE_COMMIT_RECORDS_MAX: Final = 8


@dataclass(frozen=True)
class Restored:
    """How the engine came back: from which snapshot, and the records folded after it."""

    snapshot_seq: int
    tail_records: int


class Engine(
    CommandsMixin,
    QueriesMixin,
    NoticesMixin,
    PeersMixin,
    LedgersMixin,
    PaymentsMixin,
    CrankingMixin,
    DisputesMixin,
    ChainMixin,
    RoutingMixin,
    WatchtowerMixin,
    BudgetsMixin,
):
    """One node's engine: ``Engine(...)`` restores it from the log; ``run`` serves.

    Args:
        log: the node's event log (this engine is its only writer).
        module: the derivation module the engine relies on.
        signer: the node key.
        chain: the chain service (None: no chain; transactions are not sent).
        config: see ``EngineConfig``.
        notify: receives notifications (``RpcServer.publish``).
        wanted: whether a notification name has a taker now (``RpcServer.wanted``; None:
            always): the loop builds no notification nobody takes.
    """

    def __init__(
        self,
        *,
        log: EventLog,
        module: DeriveModule,
        signer: Signer,
        chain: ChainService | None,
        config: EngineConfig,
        notify: Notify | None = None,
        wanted: Callable[[str], bool] | None = None,
    ) -> None:
        self.log = log
        self.module = module
        self.signer = signer
        self.address = signer.address
        self.chain = chain
        self.config = config
        self.confirmations = config.confirmations
        self.policy = config.policy
        self.limits = config.limits
        self.consensus_app = config.consensus_app
        self.payment_app = config.payment_app
        self.notify = notify
        self.wanted: Callable[[str], bool] = wanted or _always
        self.transport: Transport | None = None
        self.announced: Announced | None = None
        self.on_ledgers_changed: Callable[[], object] | None = None
        self.metrics: Metrics | None = None  # node/engine/_metering.py: watch_engine
        # Called after each step whose records are durable (the views fold them then).
        self.on_committed: Callable[[], object] | None = None
        self._inputs_send, self._inputs = trio.open_memory_channel[Input](engine_inputs_max)
        self._nursery: trio.Nursery | None = None
        self._commit_failures = 0
        self._events: dict[ObjectiveId, trio.Event] = {}
        self._init_chain_side()
        self._init_payments()
        self._init_ledgers()
        self._init_peers()
        self._init_tower()
        self._init_budgets()
        self.state = EngineState(self.address, self.consensus_app, self.payment_app)
        self.deriver, self.restored = self._restore()
        self.views = ViewCache(self.deriver, self.payment_app)
        self.state.complete_closes(self.views.snapshot)
        self.state.journal.commit()
        self._snapshot_seq = self.restored.snapshot_seq
        self._kept_module_seq = 0
        if self.restored.tail_records >= config.snapshot_interval_records:
            self.take_snapshot()  # a long tail is folded once, not at every start
        logger.info(
            "engine %s: restored from the snapshot at %d and %d records after it"
            " (%d objectives, %d running)",
            self.address,
            self.restored.snapshot_seq,
            self.restored.tail_records,
            len(self.state.objectives),
            len(self.state.running),
        )

    # ------------------------------------------------------------------ restart

    def _restore(self) -> tuple[Deriver, Restored]:
        """The state at the newest engine snapshot, then the records after it folded."""
        at = 0
        snapshot = self.log.latest_snapshot(ENGINE_SNAPSHOT_KEY)
        if snapshot is not None:
            try:
                decode_state(snapshot.blob, self.state)
                at = snapshot.seq
            except InvalidValueError as error:
                logger.warning("engine snapshot at %d refused (%s): replaying", snapshot.seq, error)
                self.state = EngineState(self.address, self.consensus_app, self.payment_app)
        deriver = Deriver(self.log, self.module, at_seq=at)
        deriver.catch_up()
        for record in self.log.read(at + 1):
            self.state.apply(record)
        self.state.journal.commit()
        return deriver, Restored(at, self.log.last_seq - at)

    def attach(self, transport: Transport) -> None:
        """Before ``run``: use ``transport`` for peer messages; it sends again what the
        log holds unacknowledged, and knows which of the peers' ids were handled."""
        assert self._nursery is None, "a running engine takes a transport with attach_running"
        self._attach_now(transport)

    async def attach_running(self, transport: Transport) -> None:
        """``attach`` for a running engine: done by the loop between steps, so that no
        message of a step is missed or sent before it is durable."""
        await self._query(lambda: self._attach_now(transport))
        if self._nursery is not None:
            self._nursery.start_soon(self._pump_deliveries, transport)

    def _attach_now(self, transport: Transport) -> None:
        self.transport = transport
        outboxes = {peer: dict(box) for peer, box in self.state.outbox.items() if box}
        seen = {
            peer: (ids.contiguous_max, tuple(ids.above)) for peer, ids in self.state.seen.items()
        }
        transport.restore(outboxes, seen)

    async def attach_chain(
        self, chain: ChainService, start_block: int, confirmations: int | None = None
    ) -> None:
        """Give a running engine its chain: the watcher starts from the log's cursor (or
        ``start_block`` on a new log), and objectives transact once it has caught up
        (``confirmations``: what an event needs, once the chain is known; None: the
        config's)."""
        assert self._nursery is not None, "attach_chain joins a running engine"
        if confirmations is not None:
            assert confirmations >= 0
            self.confirmations = confirmations
        head = await chain.block_number() - self.confirmations
        await self._query(lambda: self._attach_chain_now(chain, start_block, head))
        await self._nursery.start(self._watch_chain)
        await self._inputs_send.send(Timer("chain"))

    # ------------------------------------------------------------------ serving

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the chain, take peer messages, and run the loop until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.chain is not None:
                    head = await self.chain.block_number() - self.confirmations
                    self._attach_chain_now(self.chain, self.config.start_block, head)
                    await nursery.start(self._watch_chain)
                if self.transport is not None:
                    nursery.start_soon(self._pump_deliveries, self.transport)
                nursery.start_soon(self._ledger_ticks, ledger_resend_interval_ms / 1000)
                nursery.start_soon(self._expiry_ticks, engine_expiry_check_s)
                task_status.started()
                await self._loop(first=True)
        finally:
            self._nursery = None  # reads are answered directly again

    def queue_sizes(self) -> dict[str, int]:
        """What waits for the loop: inputs queued, and peers' envelopes deferred."""
        return {
            "engine_inputs": self._inputs.statistics().current_buffer_used,
            "deferred_envelopes": sum(self._deferred_envelopes.values()),
        }

    async def _pump_deliveries(self, transport: Transport) -> None:
        async for delivery in transport.deliveries:
            await self._inputs_send.send(
                PeerMessages(
                    delivery.sender, tuple(delivery.envelopes), tuple(delivery.acknowledged)
                )
            )

    async def _loop(self, *, first: bool) -> None:
        if first:
            # Every running objective is cranked once: a restart picks up where it stopped.
            await self._run_step([], dirty=frozenset(self.state.running), first=True)
        while True:
            # Peer messages a step had no time for go first, and the loop does not wait.
            inputs: list[Input] = list(self._take_deferred())
            if not inputs:
                inputs.append(await self._inputs.receive())
            elif self._all_refused(inputs):
                with trio.move_on_after(engine_refused_peer_pause_ms / 1000):
                    inputs.append(await self._inputs.receive())
            else:
                await trio.lowlevel.checkpoint()
            while len(inputs) < engine_batch_inputs_max:
                try:
                    inputs.append(self._inputs.receive_nowait())
                except trio.WouldBlock:
                    break
            started = time.perf_counter()
            await self._run_step(inputs)
            if self.metrics is not None:
                meter_step(self.metrics, inputs, time.perf_counter() - started)

    async def _run_step(
        self,
        inputs: Sequence[Input],
        dirty: frozenset[ObjectiveId] = frozenset(),
        *,
        first: bool = False,
    ) -> None:
        # Reads first: they see exactly what the log holds.
        self._answer_queries([item for item in inputs if isinstance(item, Query)])
        step = Step(dirty=set(dirty))
        try:
            if first:
                self._send_latest_vouchers(step)
            for item in inputs:
                if not isinstance(item, Query):
                    self._take(step, item)
            self._sign_payments(step)
            self._crank_rounds(step)
            if self.state.towers:
                self._fold_module(step)  # the views the hand-over reads
                self._hand_to_towers(step)
            build_messages(self.state, step)
            self._fold_module(step)
        except DeriveError as error:
            # The module refused or trapped on records this node built: nothing of
            # the step stands; its callers hear so, and the node goes on without the
            # input that caused it.
            logger.error("step abandoned: the derivation module failed: %s", error)
            self._roll_back(step)
            await self._isolate(inputs, error)
            return
        try:
            await self._commit(step)
        except LogError as error:
            self._roll_back(step)
            self._commit_failures += 1
            logger.error("step not logged (%d in a row): %s", self._commit_failures, error)
            if self._commit_failures >= _COMMIT_FAILURES_MAX:
                raise EngineFatalError(f"the event log refuses every write: {error}") from error
            return
        self._commit_failures = 0
        self._after_commit(step)

    async def _isolate(self, inputs: Sequence[Input], error: DeriveError) -> None:
        """After a step the module failed: each input without a caller again in a step
        of its own (callers were told already); a peer's messages that fail alone are
        refused and acknowledged, so the peer does not send them again."""
        again = [item for item in inputs if isinstance(item, _RETRIED)]
        if len(inputs) > 1:
            for item in again:
                await self._run_step([item])
            return
        if not again or not isinstance(again[0], PeerMessages):
            return
        messages = again[0]
        if len(messages.envelopes) == 1:
            await self._refuse_messages(messages, error)
            return
        for envelope in messages.envelopes:  # which of them is it?
            await self._run_step([PeerMessages(messages.sender, (envelope,))])

    async def _refuse_messages(self, item: PeerMessages, error: DeriveError) -> None:
        step = Step()
        sender = address_to_bytes(item.sender)
        seen = self.state.seen_of(sender)
        fresh = sorted({e.id for e in item.envelopes if e.id not in seen})
        if fresh:
            record = log_pb2.LogRecord(time_ms=now_ms())
            record.received_messages.peer = sender
            record.received_messages.message_ids.extend(fresh)
            self._log(step, record)
        raw = b"".join(envelope.SerializeToString() for envelope in item.envelopes)
        problem = f"MALFORMED: the derivation module refused what it causes: {error}"
        if self._log_rejection(step, item.sender, problem, raw):
            logger.warning("refused messages of %s: %s", item.sender, problem)
        step.received[sender] = [envelope.id for envelope in item.envelopes]
        try:
            self._fold_module(step)
            await self._commit(step)
        except (DeriveError, LogError) as failure:
            logger.error("could not log the refusal of %s's messages: %s", item.sender, failure)
            self._roll_back(step)
            return
        self._after_commit(step)

    def _take(self, step: Step, item: Input) -> None:
        """Validate one input and log what it causes (it never raises on bad input)."""
        match item:
            case CreateLedger() | CloseLedger() | CreatePayment() | ClosePayment():
                self._take_command(step, item)
            case SettleChannel():
                self._take_command(step, item)
            case AddWatchtower():
                self._take_add_watchtower(step, item)
            case UpdateLedger():
                self._take_ledger_update(step, item)
            case Pay():
                self._take_payment(step, item)
            case HandInVoucher():
                self._take_voucher(step, item)
            case PeerMessages():
                self._take_peer_messages(step, item)
            case ChainInput():
                self._take_chain_event(step, item.event)
            case TxSubmitted():
                self._take_tx_submitted(step, item)
            case TxFinished():
                self._take_tx_finished(step, item)
            case Timer():
                self._take_timer(step, item)
            case Query():
                raise AssertionError("queries are answered before the step")
            case _:
                assert_never(item)

    # ------------------------------------------------------------------ records

    def _log(self, step: Step, record: log_pb2.LogRecord) -> None:
        """Add a record to the step and fold it into the engine state at once."""
        self.state.apply(record)
        step.records.append(record)
        self.views.saw(record)

    def _fold_module(self, step: Step) -> None:
        """Let the module fold the step's records not yet folded (before the write).

        Raises:
            DeriveError: the module refused or trapped (the caller rolls back).
        """
        new = step.records[step.folded :]
        if not new:
            return
        before = step.prepared.last if step.prepared is not None else self.log.last_seq
        step.prepared = self.log.prepare(new, after=step.prepared)
        self.deriver.fold_ahead(before + 1, step.prepared.values[-len(new) :])
        step.folded = len(step.records)
        self.views.folded()
        self._step_ledgers.clear()
        self._forget_ledger_index()

    async def _commit(self, step: Step) -> None:
        """Write the step's records: one batch, one fsync."""
        prepared = step.prepared
        if prepared is None or not prepared.values:
            return
        if len(prepared) <= _INLINE_COMMIT_RECORDS_MAX or not engine_clock().threads:
            self.log.commit(prepared)
        else:
            await trio.to_thread.run_sync(self.log.commit, prepared)

    def _roll_back(self, step: Step) -> None:
        """Forget the step: state and module as the log holds them; nothing acknowledged."""
        self.state.journal.roll_back()
        self.state.count_backlog()
        if self.deriver.tentative:
            self.deriver.roll_back()
        self.views.clear()
        self._forget_step_caches()
        if self.transport is not None:
            for peer, message_ids in step.received.items():
                self.transport.release(peer, message_ids)
        for refuse in step.refusals:
            refuse()

    def _after_commit(self, step: Step) -> None:
        """The step is durable: keep its changes and run its effects."""
        if self.metrics is not None:
            meter_commit(self.metrics, step)
        self.deriver.confirm()
        self.state.journal.commit()
        self.state.prune()
        if self.transport is not None:
            for peer, messages in step.messages.items():
                self.transport.transmit(peer, messages)
            for peer, message_ids in step.received.items():
                self.transport.acknowledge(peer, message_ids)
        for laggard in self._peers_over_backlog(step):
            problem = self._backlog_problem(laggard)
            logger.warning(
                "%s: no new work with it until it catches up; disconnected for %d s",
                problem,
                engine_peer_backoff_s,
            )
            if self.transport is not None:
                self.transport.disconnect(laggard, engine_peer_backoff_s)
        for answer in step.answers:
            answer()
        for objective_id, transaction in step.transactions:
            self._start_transaction(objective_id, transaction)
        self._notify(step)
        if step.ledgers_changed and self.on_ledgers_changed is not None:
            self.on_ledgers_changed()
        if step.prepared is not None and step.prepared.values and self.on_committed is not None:
            self.on_committed()
        if self.log.last_seq - self._snapshot_seq >= self.config.snapshot_interval_records:
            self.take_snapshot()

    def take_snapshot(self) -> None:
        """Store the engine state and the module's at the log's head, in one write.

        The engine's previous snapshot goes in the same write; the module's stays only
        if it is the first past a ``derive_snapshot_interval_records`` boundary, so
        time travel keeps points to start from without every snapshot piling up.
        """
        assert not self.deriver.tentative
        seq = self.log.last_seq
        if seq == self._snapshot_seq:
            return
        assert self.deriver.cursor == seq, (self.deriver.cursor, seq)
        module_blob = self.deriver.snapshot_blob()
        engine_blob = encode_state(self.state)
        previous = self._snapshot_seq
        stale: list[tuple[bytes, int]] = []
        if previous > 0:
            stale.append((ENGINE_SNAPSHOT_KEY, previous))
            interval = derive_snapshot_interval_records
            if previous // interval == self._kept_module_seq // interval:
                stale.append((self.module.sha256, previous))
            else:
                self._kept_module_seq = previous
        self.log.put_snapshots(
            [
                Snapshot(self.module.sha256, seq, module_blob),
                Snapshot(ENGINE_SNAPSHOT_KEY, seq, engine_blob),
            ],
            delete=stale,
        )
        self._snapshot_seq = seq

    # ------------------------------------------------------------------ timers

    def _after(self, seconds: float, timer: Timer) -> None:
        """Put ``timer`` on the loop's input after ``seconds``."""
        if self._nursery is None:
            return
        self._nursery.start_soon(self._wake_after, seconds, timer)

    async def _wake_after(self, seconds: float, timer: Timer) -> None:
        await trio.sleep(seconds)
        await self._inputs_send.send(timer)

    def _take_timer(self, step: Step, timer: Timer) -> None:
        match timer.reason:
            case "ledger":
                self._resend_ledger_proposals(step)
            case "state":
                assert isinstance(timer.key, ObjectiveId)
                self._resend_latest_state(step, timer.key)
            case "voucher":
                assert isinstance(timer.key, bytes)
                self._resend_voucher(step, timer.key)
            case "transaction":
                assert isinstance(timer.key, ObjectiveId)
                step.dirty.add(timer.key)
            case "chain":
                step.dirty.update(self.state.running)  # deposits may be due now
            case "expiry":
                self._expire_objectives(step)
            case _:
                raise AssertionError(f"unknown timer {timer.reason}")

    async def _ledger_ticks(self, interval_s: float) -> None:
        while True:
            await trio.sleep(interval_s)
            if self._ledgers_waiting():
                await self._inputs_send.send(Timer("ledger"))

    async def _expiry_ticks(self, interval_s: float) -> None:
        while True:
            await trio.sleep(interval_s)
            await self._inputs_send.send(Timer("expiry"))

    # ------------------------------------------------------------------ waiting

    def _event(self, objective_id: ObjectiveId) -> trio.Event:
        event = self._events.get(objective_id)
        if event is None:
            event = self._events[objective_id] = trio.Event()
        return event

    async def wait_objective(self, objective_id: ObjectiveId) -> Entry:
        """Wait until ``objective_id`` is done or failed; returns its entry then.

        An objective a peer proposes may be waited on before it arrives.
        """
        entry = self.state.entry(objective_id)
        if entry is None or entry.running:
            await self._event(objective_id).wait()
        finished = self.state.entry(objective_id)
        assert finished is not None
        return finished

    def _finished(self, objective_id: ObjectiveId) -> None:
        event = self._events.pop(objective_id, None)
        if event is not None:
            event.set()

    def _forget_objective(self, objective_id: ObjectiveId) -> None:
        """An objective ended: what the loop kept for it in memory goes."""
        self._rejection_resends.pop(objective_id, None)
        self._forget_transactions(objective_id)


def _always(method: str) -> bool:
    """Every notification has a taker (an engine given no ``wanted``)."""
    return True
