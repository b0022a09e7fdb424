"""The chain in the engine: confirmed events in, transactions out.

The chain watcher only puts events on the loop's input; the loop logs those that
concern our channels and wakes the objectives they touch. Block marks carry the
chain's time, which settlements wait on. Transactions run in tasks of their own,
which only report back (sent, mined, refused); the loop logs each report as a
SubmittedTransaction, so an objective never sends the same transaction twice
while it is pending, and retries a refused one after a pause.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, assert_never

import trio

from node.core import encode_exit
from node.core.constants import (
    chain_retry_interval_ms_max,
    engine_block_record_interval_ms,
    engine_tx_attempts_max,
)
from node.core.errors import ChainError
from node.engine._config import EngineConfig
from node.engine._inputs import ChainInput, Input, Timer, TxFinished, TxKey, TxSubmitted
from node.engine._records import approve_record, chain_event_record, submitted_record
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import ViewCache
from node.proto import log_pb2
from node.protocols import (
    ChannelSnapshot,
    Defend,
    DirectDefund,
    Guard,
    ObjectiveId,
    ObjectiveKind,
    Settle,
    SubmitChallenge,
    SubmitCheckpoint,
    SubmitConclude,
    SubmitConcludeAndTransfer,
    SubmitDeposit,
    SubmitReclaim,
    SubmitTransfer,
    Transaction,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

    from node.chain import ChainService, ReclaimRequest, Submitted

logger = logging.getLogger("node.engine")

OnSubmitted = Callable[["Submitted"], Awaitable[None]]
_ASSET_INDEX = 0  # ledger and virtual channels hold one asset


class ChainMixin:
    """The engine's chain side (mixed into ``Engine``, which provides the state)."""

    chain: ChainService | None
    state: EngineState
    views: ViewCache
    config: EngineConfig
    _nursery: trio.Nursery | None
    _inputs_send: trio.MemorySendChannel[Input]
    _log: Callable[[Step, log_pb2.LogRecord], None]
    _after: Callable[[float, Timer], None]
    _fail: Callable[[Step, ObjectiveId, str], None]
    _complete_event: Callable[[log_pb2.ChainEvent, ChannelSnapshot], None]
    _answer_challenge: Callable[[Step, ChannelSnapshot, log_pb2.ChallengeRegistered], None]
    _take_watched_event: Callable[[Step, log_pb2.ChainEvent], None]

    confirmations: int

    def _init_chain_side(self) -> None:
        self._chain_time_s = 0
        self._start_block = 0
        self._chain_ready_block: int | None = None
        self._last_block_logged_at = -math.inf
        self._pending_block = False  # an event was logged: log the next block mark too
        self._inflight: set[TxKey] = set()
        self._attempts: dict[TxKey, int] = {}
        self._retry_at: dict[TxKey, float] = {}
        # The confirmed block the watcher reported last, and that block when each
        # transaction's last counted refusal came (``_count_refusal``).
        self._processed_block = -1
        self._counted_at: dict[TxKey, int] = {}

    def _has_chain(self) -> bool:
        return self.chain is not None

    @property
    def chain_ready(self) -> bool:
        """Whether the watcher has back-filled to the head seen at start."""
        return self._chain_ready_block is None

    @property
    def chain_time_s(self) -> int:
        """The timestamp of the latest block the watcher reported."""
        return self._chain_time_s

    def _attach_chain_now(self, chain: ChainService, start_block: int, head: int) -> None:
        """Use ``chain`` from now on; ``head`` is its block (less the confirmations)."""
        self.chain = chain
        self._start_block = start_block
        # Transactions wait until the watcher has back-filled to the head: a deposit
        # computed from stale holdings would only be refused.
        self._chain_ready_block = head if head >= self._from_block() else None
        if self._chain_ready_block is None:
            self._recover_transactions()

    def _from_block(self) -> int:
        cursor = self.state.cursor
        if cursor.last_block is not None:
            return cursor.last_block + 1
        return self._start_block

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
                    from_block=self._from_block(),
                    after=self.state.cursor.last_event,
                    confirmations=self.confirmations,
                    task_status=task_status,
                )
            except ChainError as error:
                # The chain failed us (an RPC error, a deep reorg): watch again from
                # what the log holds; events already logged are skipped.
                logger.error("chain watcher stopped: %s; restarting it", error)
                task_status = trio.TASK_STATUS_IGNORED
                await trio.sleep(chain_retry_interval_ms_max / 1000)

    # ------------------------------------------------------------------ events

    def _take_chain_event(self, step: Step, event: log_pb2.ChainEvent) -> None:
        """Log an event that concerns our channels, or a block mark now and then."""
        case = event.WhichOneof("event")
        if case == "block_processed":
            self._take_block(step, event)
            return
        if case == "blocks_reverted":
            self._take_revert(step, event)
            return
        last = self.state.cursor.last_event
        if last is not None and (event.block_number, event.log_index) <= last:
            return  # delivered again by a restarted watcher: logged already
        channel = getattr(event, case).channel_id if case is not None else b""
        if channel in self.state.watched:
            self._take_watched_event(step, event)
        # A guard's channel is a client's: its events are the tower's records, not ours.
        touched = [
            oid
            for oid in self.state.running
            if oid.channel_id == channel and oid.kind is not ObjectiveKind.GUARD
        ]
        snapshot = self.views.snapshot(channel)
        if not touched and snapshot is None:
            logger.debug("chain event %s for channel 0x%s: not ours", case, channel.hex())
            return
        if snapshot is not None:
            self._complete_event(event, snapshot)
        step.dirty.update(touched)
        self._wake_settlements(step)
        self._pending_block = True
        self._log(step, chain_event_record(event))
        step.touched.add(channel)
        if case in ("challenge_registered", "concluded"):
            step.ledgers_changed = True  # a disputed ledger is no longer offered
        if case == "challenge_registered" and snapshot is not None:
            self._answer_challenge(step, snapshot, event.challenge_registered)

    def _take_revert(self, step: Step, event: log_pb2.ChainEvent) -> None:
        """Blocks we logged events of were replaced: the module undoes those events, and
        everything that read them looks again (the watcher delivers the canonical ones)."""
        first = event.blocks_reverted.first_block
        logger.warning("chain: blocks from %d were replaced by a reorganisation", first)
        self._processed_block = min(self._processed_block, first - 1)
        self._log(step, chain_event_record(event))
        step.dirty.update(self.state.running)
        if self._chain_ready_block is None:
            # What was mined in the replaced blocks is unconfirmed again: ask the chain
            # (dropped or reverted, the objective sends it again).
            self._recover_transactions()

    def _take_block(self, step: Step, event: log_pb2.ChainEvent) -> None:
        block = event.block_processed.block_number
        self._processed_block = max(self._processed_block, block)
        if event.block_time_s > self._chain_time_s:
            self._chain_time_s = event.block_time_s
            self._wake_settlements(step)
        ready = self._chain_ready_block
        if ready is not None and block >= ready:
            self._chain_ready_block = None
            step.dirty.update(self.state.running)
            logger.info("engine: chain caught up at block %d", block)
            self._recover_transactions()
        now = trio.current_time()
        interval = engine_block_record_interval_ms / 1000
        if not self._pending_block and now - self._last_block_logged_at < interval:
            return
        self._pending_block = False
        self._last_block_logged_at = now
        self._log(step, chain_event_record(event))

    def _wake_settlements(self, step: Step) -> None:
        """Settlements read the chain's time and every channel of their ledger; defences
        and guards end when a challenge finalizes, and so does a close it overtook."""
        running = self.state.running_entries()
        kinds = Settle | Defend | Guard | DirectDefund
        step.dirty.update(oid for oid, entry in running if isinstance(entry.objective, kinds))

    # ------------------------------------------------------------------ transactions

    def _start_transaction(self, objective_id: ObjectiveId, transaction: Transaction) -> None:
        asset = transaction.asset if isinstance(transaction, SubmitDeposit) else None
        key: TxKey = (objective_id, transaction.kind, transaction.channel_id, asset)
        if self.chain is None or not self.chain_ready or key in self._inflight:
            return
        wait_s = self._retry_at.get(key, -math.inf) - trio.current_time()
        if wait_s > 0:
            self._after(wait_s, Timer("transaction", objective_id))
            return
        self._inflight.add(key)
        assert self._nursery is not None
        self._nursery.start_soon(self._transact, key, transaction)

    async def _transact(self, key: TxKey, transaction: Transaction) -> None:
        """Send one transaction and wait for it; report each step to the loop."""
        sent: list[Submitted] = []

        async def on_submitted(submitted: Submitted) -> None:
            sent.append(submitted)
            await self._inputs_send.send(TxSubmitted(key, transaction, submitted))

        try:
            logger.info("%s: submitting %s", key[0], key[1].value)
            await self._submit(transaction, on_submitted)
        except ChainError as error:
            await self._inputs_send.send(TxFinished(key, sent[-1] if sent else None, str(error)))
        else:
            await self._inputs_send.send(TxFinished(key, sent[-1] if sent else None))

    async def _submit(self, transaction: Transaction, on_submitted: OnSubmitted) -> object:
        chain = self.chain
        assert chain is not None
        match transaction:
            case SubmitDeposit():
                return await chain.deposit(
                    transaction.asset,
                    transaction.channel_id,
                    transaction.expected_held,
                    transaction.amount,
                    on_submitted=on_submitted,
                )
            case SubmitConcludeAndTransfer():
                return await chain.conclude_and_transfer_all_assets(
                    transaction.signed_final, on_submitted=on_submitted
                )
            case SubmitConclude():
                return await chain.conclude(transaction.signed_final, on_submitted=on_submitted)
            case SubmitChallenge():
                return await chain.challenge(
                    transaction.candidate,
                    transaction.signature,
                    transaction.proof,
                    on_submitted=on_submitted,
                )
            case SubmitCheckpoint():
                return await chain.checkpoint(
                    transaction.candidate, transaction.proof, on_submitted=on_submitted
                )
            case SubmitReclaim():
                return await chain.reclaim(_reclaim_request(transaction), on_submitted=on_submitted)
            case SubmitTransfer():
                return await chain.transfer(
                    _ASSET_INDEX,
                    transaction.channel,
                    encode_exit(transaction.outcome),
                    transaction.state_hash,
                    (),
                    on_submitted=on_submitted,
                )
            case _:
                assert_never(transaction)

    def _take_tx_submitted(self, step: Step, item: TxSubmitted) -> None:
        objective_id, kind, channel, asset = item.key
        submitted = item.submitted
        if submitted.operation == "approve":
            record = approve_record(
                objective_id, channel=channel, tx_hash=submitted.tx_hash, nonce=submitted.nonce
            )
            self._log(step, record)
            return
        amount = item.transaction.amount if isinstance(item.transaction, SubmitDeposit) else 0
        record = submitted_record(
            objective_id,
            kind,
            channel=channel,
            tx_hash=submitted.tx_hash,
            nonce=submitted.nonce,
            asset=asset,
            amount=amount,
        )
        self._log(step, record)

    def _take_tx_finished(self, step: Step, item: TxFinished) -> None:
        key = item.key
        objective_id, kind, channel, asset = key
        self._inflight.discard(key)
        step.dirty.add(objective_id)
        if item.failure is None:
            self._attempts.pop(key, None)
            self._retry_at.pop(key, None)
            self._counted_at.pop(key, None)
            if item.submitted is not None:
                mined = submitted_record(
                    objective_id,
                    kind,
                    channel=channel,
                    tx_hash=item.submitted.tx_hash,
                    nonce=item.submitted.nonce,
                    asset=asset,
                    mined=True,
                )
                self._log(step, mined)
            return
        logger.warning("%s: %s transaction refused: %s", objective_id, kind.value, item.failure)
        submitted = item.submitted
        record = submitted_record(
            objective_id,
            kind,
            channel=channel,
            tx_hash=submitted.tx_hash if submitted else b"",
            nonce=submitted.nonce if submitted else 0,
            asset=asset,
            failure=item.failure,
        )
        self._log(step, record)
        attempts = self._count_refusal(key)
        self._retry_at[key] = trio.current_time() + self.config.tx_retry_ms / 1000
        entry = self.state.entry(objective_id)
        if attempts >= engine_tx_attempts_max and entry is not None and entry.running:
            self._fail(step, objective_id, f"{kind.value} refused {attempts} times: {item.failure}")

    def _count_refusal(self, key: TxKey) -> int:
        """The refusals of a transaction that count toward giving up, this one included
        if it counts: the first, then each once the watcher has confirmed every block
        that was pending at the refusal counted before. A retry before that was built
        from the same view of the chain; it may well be refused because of a block the
        view does not hold yet (another party's transfer paid the ledger out, and ours
        no longer matches the channel's fingerprint), and the objective that sees that
        block is done instead of failed."""
        seen = self._processed_block
        counted = self._counted_at.get(key)
        if counted is None or seen > counted + self.confirmations:
            self._attempts[key] = self._attempts.get(key, 0) + 1
            self._counted_at[key] = seen
        return self._attempts[key]

    def _recover_transactions(self) -> None:
        """Transactions sent before a restart (or mined in blocks a reorg replaced) and
        neither mined nor refused in the log since: ask the chain what became of them
        before the objectives send anything again."""
        for key, hashes in list(self.state.unconfirmed.items()):
            entry = self.state.entry(key[0])
            if entry is None or not entry.running or key in self._inflight:
                continue
            self._inflight.add(key)
            assert self._nursery is not None
            self._nursery.start_soon(self._confirm, key, hashes)

    async def _confirm(self, key: TxKey, hashes: tuple[bytes, ...]) -> None:
        """Wait for one of a transaction's sends to be mined; report it refused if it
        reverted or the chain forgot every send (dropped: the objective sends again)."""
        from node.chain import Submitted  # the chain's libraries load after the engine

        chain = self.chain
        assert chain is not None
        operation = key[1].value
        poll_s = self.config.tx_retry_ms / 1000
        while True:
            try:
                states = [await chain.transaction_state(tx_hash) for tx_hash in hashes]
            except ChainError as error:
                logger.warning("%s: %s: cannot ask the chain: %s", key[0], operation, error)
                await trio.sleep(poll_s)
                continue
            for tx_hash, state in zip(hashes, states, strict=True):
                if state in ("mined", "reverted"):
                    submitted = Submitted(operation, tx_hash, 0)
                    failure = None if state == "mined" else f"{operation}: reverted"
                    await self._inputs_send.send(TxFinished(key, submitted, failure))
                    return
            if "pending" not in states:
                failure = f"{operation}: no longer known to the chain (dropped)"
                await self._inputs_send.send(TxFinished(key, None, failure))
                return
            await trio.sleep(poll_s)

    def _forget_transactions(self, objective_id: ObjectiveId) -> None:
        """An objective ended: its retry bookkeeping goes (the maps stay bounded)."""
        for key in [k for k in self._attempts if k[0] == objective_id]:
            del self._attempts[key]
        for key in [k for k in self._retry_at if k[0] == objective_id]:
            del self._retry_at[key]
        for key in [k for k in self._counted_at if k[0] == objective_id]:
            del self._counted_at[key]


def _reclaim_request(reclaim: SubmitReclaim) -> ReclaimRequest:
    from node.chain import ReclaimRequest  # the chain package loads web3: only when used

    return ReclaimRequest(
        source_channel_id=reclaim.ledger_id,
        source_state_hash=reclaim.ledger_state_hash,
        source_outcome=encode_exit(reclaim.ledger_outcome),
        source_asset_index=_ASSET_INDEX,
        index_of_target_in_source=reclaim.target_index,
        target_state_hash=reclaim.target_state_hash,
        target_outcome=encode_exit(reclaim.target_outcome),
        target_asset_index=_ASSET_INDEX,
    )
