"""Settling a virtual channel on chain when the other parties no longer answer.

``settle_on_chain`` enforces what we hold on a virtual channel V through the
ledger channel we share with our neighbour on its path: it challenges V (the
payee with its largest voucher through the VirtualPaymentApp; or, when everyone
signed V's final state, concludes V with it), challenges the ledger with its
latest supported state (which holds V's guarantee), waits for both to finalize,
reclaims V's outcome into the ledger and pays the ledger out.

Every step first reads the adjudicator's status and holdings, so running it
again (after a crash, or to continue once the challenges have finalized)
skips what is done. Each transaction is logged as a SubmittedTransaction once
sent, under the objective id ``Dispute-0x<V>`` that no objective replays.
"""

from __future__ import annotations

import enum
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from node.chain import ChainService, ChannelStatus, ReclaimRequest, Submitted
from node.core import (
    SignedState,
    SingleAssetExit,
    State,
    constants,
    encode_exit,
    signed_state_from_proto,
    state_hash,
)
from node.core import channel_id as channel_id_of
from node.core.errors import ChainError, InvalidValueError, ProtocolError
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._records import accepted_state_record, now_ms
from node.engine._views import snapshot_from_view
from node.proto import log_pb2
from node.protocols import (
    ChainChallenge,
    ChannelSnapshot,
    FundingLedger,
    LedgerPayout,
    concluded_with,
    finalized_with,
    funding_ledger,
    ledger_challenge,
    ledger_payout,
    virtual_challenge,
    virtual_conclusion,
)
from node.rpc import (
    BYTES32,
    ErrorCode,
    JsonValue,
    MethodRegistry,
    Param,
    RpcError,
)

if TYPE_CHECKING:
    from node.engine._engine import Engine

logger = logging.getLogger("node.engine")

DISPUTE_OBJECTIVE = "Dispute-0x"  # objective_id of the transactions logged here
Progress = Callable[[str], object]
OnSubmitted = Callable[[Submitted], Awaitable[None]]
_ASSET_INDEX = 0  # ledger and virtual channels hold one asset
_locks: weakref.WeakKeyDictionary[Engine, trio.Lock] = weakref.WeakKeyDictionary()


class SettleStage(enum.Enum):
    """How far a settlement got."""

    CHALLENGED = "CHALLENGED"  # the challenges are registered; not all have finalized
    SETTLED = "SETTLED"  # every guaranteed channel reclaimed into the ledger, paid out


@dataclass(frozen=True)
class Settlement:
    """What ``settle_on_chain`` did and found.

    Attributes:
        channel_id: the virtual channel.
        ledger_id: our ledger channel that funded it, now settled on chain.
        stage: CHALLENGED (call again once ``finalizes_at`` has passed) or SETTLED.
        finalizes_at: chain time (unix s) by which every challenge finalizes.
        paid: what V's finalized outcome pays the payee (None before it finalizes).
        payout: what the ledger pays us on chain (None before it finalizes).
        submitted: the adjudicator operations this call sent, in order.
    """

    channel_id: bytes
    ledger_id: bytes
    stage: SettleStage
    finalizes_at: int
    paid: int | None = None
    payout: int | None = None
    submitted: tuple[str, ...] = ()

    def to_json(self) -> dict[str, JsonValue]:
        """The settlement as JSON for the API (amounts as decimal strings)."""
        return {
            "channel_id": "0x" + self.channel_id.hex(),
            "ledger_id": "0x" + self.ledger_id.hex(),
            "stage": self.stage.value,
            "finalizes_at": self.finalizes_at,
            "paid": None if self.paid is None else str(self.paid),
            "payout": None if self.payout is None else str(self.payout),
            "submitted": list(self.submitted),
        }


@dataclass(frozen=True)
class VirtualPlan:
    """How one virtual channel is enforced.

    Attributes:
        channel_id: the virtual channel.
        challenge: its challenge (redemption state or setup state), or None when
            everyone signed its final state: then ``final`` is concluded instead.
        final: its final state signed by every participant, or None.
        known: its states we hold that a challenge may have registered.
    """

    channel_id: bytes
    challenge: ChainChallenge | None
    final: SignedState | None
    known: tuple[State, ...]


@dataclass(frozen=True)
class SettlementPlan:
    """What a settlement submits, built from what the log holds.

    Attributes:
        channel_id: the virtual channel V asked for.
        virtuals: every channel the ledger guarantees (V among them), by id as
            in the ledger: each is enforced, since a ledger pays out only once none
            of its guarantees is left.
        funding: our ledger that guarantees V, at its latest supported state.
        ledger: the challenge of that ledger.
    """

    channel_id: bytes
    virtuals: tuple[VirtualPlan, ...]
    funding: FundingLedger
    ledger: ChainChallenge


def plan_settlement(
    engine: Engine, channel_id: bytes, ledger_id: bytes | None = None
) -> SettlementPlan:
    """The states to submit for ``channel_id``, from the derivation module and our vouchers.

    Raises:
        CommandRefusedError: NOT_FOUND (no such payment channel), INVALID (we are
            not a participant) or CONFLICT (nothing to enforce, or no ledger of ours
            guarantees it).
    """
    snapshot = _payment_snapshot(engine, channel_id)
    if engine.address not in snapshot.fixed.participants:
        raise CommandRefusedError(
            Refusal.INVALID,
            f"this node ({engine.address}) is not a participant of 0x{channel_id.hex()}",
        )
    consensus_app = engine.consensus_app.lower()
    ledgers = [
        snapshot_from_view(view)
        for view in engine.deriver.channels()
        if "0x" + view.fixed.app_definition.hex() == consensus_app
    ]
    try:
        virtual = _virtual_plan(engine, snapshot)
        funding = funding_ledger(snapshot.fixed, engine.address, ledgers, ledger_id)
        ledger = ledger_challenge(funding, engine.signer)
        (asset_exit,) = funding.supported.state.outcome
        guaranteed = [
            a.destination
            for a in asset_exit.allocations
            if a.allocation_type == constants.allocation_type_guarantee
        ]
    except ProtocolError as error:
        raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
    others = [_other_plan(engine, target) for target in guaranteed if target != channel_id]
    virtuals = sorted([virtual, *(plan for plan in others if plan is not None)], key=_by_id)
    return SettlementPlan(channel_id, tuple(virtuals), funding, ledger)


def _by_id(plan: VirtualPlan) -> bytes:
    return plan.channel_id


def _payment_snapshot(engine: Engine, channel_id: bytes) -> ChannelSnapshot:
    snapshot = engine.snapshot(channel_id)
    payment_app = engine.payment_app.lower()
    if snapshot is None or snapshot.fixed.app_definition.lower() != payment_app or not payment_app:
        raise CommandRefusedError(Refusal.NOT_FOUND, f"no payment channel 0x{channel_id.hex()}")
    return snapshot


def _other_plan(engine: Engine, target: bytes) -> VirtualPlan | None:
    """The plan of another channel our ledger guarantees (None: we cannot enforce it;
    the ledger's payout is then refused, naming it)."""
    try:
        return _virtual_plan(engine, _payment_snapshot(engine, target))
    except (CommandRefusedError, ProtocolError) as error:
        logger.warning("the ledger also guarantees 0x%s: %s", target.hex(), error)
        return None


def _virtual_plan(engine: Engine, snapshot: ChannelSnapshot) -> VirtualPlan:
    """Conclude with a final state everyone signed, else challenge with our best state."""
    final = virtual_conclusion(snapshot, engine.address)
    challenge = None
    if final is None:
        largest = engine.largest_voucher(snapshot.channel_id)
        challenge = virtual_challenge(snapshot, engine.signer, largest)
    assert snapshot.supported is not None  # checked by both
    known = [snapshot.supported.state]
    if challenge is not None:
        known.insert(0, challenge.candidate.state)
    return VirtualPlan(snapshot.channel_id, challenge, final, tuple(known))


async def settle_on_chain(
    engine: Engine,
    channel_id: bytes,
    *,
    ledger_id: bytes | None = None,
    wait: bool = True,
    progress: Progress | None = None,
) -> Settlement:
    """Enforce what we hold on virtual channel ``channel_id`` through our ledger that funds it.

    Every other channel that ledger guarantees is enforced too (the ledger pays
    out only once no guarantee is left), each with the best state we hold.

    Args:
        engine: a running engine with a chain.
        channel_id: the virtual channel.
        ledger_id: which of our ledgers next to us on the path (default: the one
            toward the payer; for the payer, the one toward the payee).
        wait: wait for the challenges to finalize (else return CHALLENGED).
        progress: told, in words, each step taken.

    Raises:
        CommandRefusedError: see ``plan_settlement``; or this node has no chain;
            or a channel finalized with a state this node does not know.
        ChainError: the chain refused a transaction or could not be reached.
    """
    chain = engine.chain
    if chain is None:
        raise CommandRefusedError(Refusal.CONFLICT, "this node has no chain to settle on")
    lock = _locks.setdefault(engine, trio.Lock())
    async with lock:
        plan = plan_settlement(engine, channel_id, ledger_id)
        run = _Run(engine, chain, plan, [], progress)
        for virtual in plan.virtuals:
            await run.challenge_virtual(virtual)
        await run.challenge_ledger()
        while True:
            finalizes_at, finalized = await run.finalization()
            if finalized:
                return await run.pay_out(finalizes_at)
            if not wait:
                return run.result(SettleStage.CHALLENGED, finalizes_at)
            await trio.sleep(constants.dispute_poll_interval_ms / 1000)


@dataclass
class _Run:
    """One call of ``settle_on_chain``: the plan, and what it sent."""

    engine: Engine
    chain: ChainService
    plan: SettlementPlan
    sent: list[str]
    progress: Progress | None

    @property
    def ledger_id(self) -> bytes:
        return self.plan.funding.id

    def say(self, text: str) -> None:
        logger.info("settling 0x%s: %s", self.plan.channel_id.hex(), text)
        if self.progress is not None:
            self.progress(text)

    def result(
        self,
        stage: SettleStage,
        finalizes_at: int,
        paid: int | None = None,
        payout: int | None = None,
    ) -> Settlement:
        return Settlement(
            self.plan.channel_id,
            self.ledger_id,
            stage,
            finalizes_at,
            paid,
            payout,
            tuple(self.sent),
        )

    # ------------------------------------------------------------------ challenges

    async def challenge_virtual(self, virtual: VirtualPlan) -> None:
        """Conclude a payment channel with the final state everyone signed, or else
        challenge it; unless it is finalized or challenged with a turn as high as ours."""
        name = f"payment channel 0x{virtual.channel_id.hex()[:8]}"
        status = await self.chain.status(virtual.channel_id)
        now = await _chain_time(self.chain)
        if _finalized(status, now):
            self.say(f"{name} has finalized already")
            return
        if virtual.final is not None:
            self.say(f"concluding {name} with the final state everyone signed")
            await self._conclude(virtual.final)
            return
        assert virtual.challenge is not None  # the plan has one or the other
        candidate = virtual.challenge.candidate
        if status.finalizes_at != 0 and status.turn_num_record >= candidate.state.turn_num:
            self.say(f"{name} is challenged already (turn {status.turn_num_record})")
            return
        if candidate.state.turn_num > constants.postfund_turn_num and not self._logged(candidate):
            # Our signature on the redemption state is logged before it leaves.
            self._append(accepted_state_record(candidate))
        self.say(f"challenging {name} with turn {candidate.state.turn_num}")
        await self._challenge(virtual.challenge)

    async def challenge_ledger(self) -> None:
        """Challenge the ledger unless it is paid out, finalized, or challenged as high."""
        status = await self.chain.status(self.ledger_id)
        held = await self.chain.holdings(self._asset, self.ledger_id)
        now = await _chain_time(self.chain)
        turn = self.plan.ledger.candidate.state.turn_num
        if _cleared(status) and held == 0:
            self.say("the ledger holds nothing on chain: paid out already")
            return
        if _finalized(status, now):
            self.say("the ledger has finalized already")
            return
        if status.finalizes_at != 0 and status.turn_num_record >= turn:
            self.say(f"the ledger is challenged already (turn {status.turn_num_record})")
            return
        self.say(f"challenging the ledger with its supported turn {turn}")
        await self._challenge(self.plan.ledger)

    async def finalization(self) -> tuple[int, bool]:
        """When every channel finalizes, and whether all have (a paid-out ledger has)."""
        now = await _chain_time(self.chain)
        statuses = [await self.chain.status(v.channel_id) for v in self.plan.virtuals]
        ledger = await self.chain.status(self.ledger_id)
        if not _cleared(ledger) or await self.chain.holdings(self._asset, self.ledger_id) != 0:
            statuses.append(ledger)
        finalizes_at = max(status.finalizes_at for status in statuses)
        return finalizes_at, all(_finalized(status, now) for status in statuses)

    # ------------------------------------------------------------------ payout

    async def pay_out(self, finalizes_at: int) -> Settlement:
        """Reclaim every guaranteed channel into the ledger, in the ledger's order, then
        pay the ledger out; each step the chain shows done is skipped."""
        targets = {v.channel_id: await self._finalized_virtual(v) for v in self.plan.virtuals}
        outcomes = {target: state.outcome for target, (_, state) in targets.items()}
        ledger, stage = await self._ledger_stage(outcomes)
        for target, index, source in ledger.reclaims[stage:]:
            target_hash, target_state = targets[target]
            self.say(f"reclaiming payment channel 0x{target.hex()[:8]} into the ledger")
            request = _reclaim_request(
                self.ledger_id, ledger.state, index, source, target_hash, target_state
            )
            await self._send_reclaim(request)
        if stage <= len(ledger.reclaims):
            self.say("paying out the ledger")
            recorded_hash = state_hash(ledger.state)
            await self._send_transfer(encode_exit(ledger.reclaimed), recorded_hash, ())
        else:
            self.say("the ledger is paid out")
        _, asked = targets[self.plan.channel_id]
        paid = asked.outcome[0].allocations[1].amount
        return self.result(SettleStage.SETTLED, finalizes_at, paid, ledger.payout)

    async def _ledger_stage(
        self, outcomes: dict[bytes, tuple[SingleAssetExit, ...]]
    ) -> tuple[LedgerPayout, int]:
        """The ledger state the chain holds (our supported one, or one a challenge
        registered) and how many of its steps are done."""
        status = await self.chain.status(self.ledger_id)
        my_index = self.plan.funding.my_index
        candidates = [self.plan.funding.supported.state]
        problems: list[str] = []
        for _ in range(constants.dispute_candidate_reads_max):
            payouts = []
            for state in candidates:
                try:
                    payouts.append(ledger_payout(state, my_index, outcomes))
                except ProtocolError as error:
                    problems.append(str(error))
            if _cleared(status) and payouts:
                return payouts[0], len(payouts[0].reclaims) + 1
            for payout in payouts:
                stage = payout.stage_of(status.fingerprint)
                if stage is not None:
                    return payout, stage
            # A state someone else registered reaches our log once confirmed.
            await trio.sleep(constants.dispute_poll_interval_ms / 1000)
            candidates = self._registered(self.ledger_id)[::-1]
        detail = f" ({problems[-1]})" if problems else ""
        raise CommandRefusedError(
            Refusal.CONFLICT,
            f"ledger 0x{self.ledger_id.hex()} finalized with a state this node does not"
            f" know{detail}",
        )

    async def _finalized_virtual(self, virtual: VirtualPlan) -> tuple[bytes, State]:
        """The state a channel finalized with (ours, a setup state, one a challenge
        registered, or the final state concluded) and the state hash its status records."""
        status = await self.chain.status(virtual.channel_id)
        final = virtual.final
        if final is not None and concluded_with(status.fingerprint, final.state):
            return bytes(constants.bytes32_bytes), final.state
        target = finalized_with(status.fingerprint, virtual.known)
        for _ in range(constants.dispute_candidate_reads_max):
            if target is not None:
                return state_hash(target), target
            # A challenge by someone else reaches our log once the watcher confirms it.
            await trio.sleep(constants.dispute_poll_interval_ms / 1000)
            target = finalized_with(status.fingerprint, self._registered(virtual.channel_id))
        raise CommandRefusedError(
            Refusal.CONFLICT,
            f"payment channel 0x{virtual.channel_id.hex()} finalized with a state this node"
            " does not know",
        )

    def _logged(self, candidate: SignedState) -> bool:
        """Whether the module holds ``candidate`` as our latest signed state already."""
        fixed = candidate.state.fixed
        snapshot = self.engine.snapshot(channel_id_of(fixed))
        mine = fixed.participants.index(self.engine.address)
        latest = snapshot.latest_signed_by(mine) if snapshot is not None else None
        return latest is not None and latest.state == candidate.state

    def _registered(self, channel: bytes) -> list[State]:
        """The candidates of challenges of ``channel`` that the chain watcher logged."""
        found = []
        for record in self.engine.log.read():
            if record.WhichOneof("payload") != "chain_event":
                continue
            event = record.chain_event
            if event.WhichOneof("event") != "challenge_registered":
                continue
            registered = event.challenge_registered
            if registered.channel_id != channel or not registered.HasField("candidate"):
                continue
            try:
                found.append(signed_state_from_proto(registered.candidate).state)
            except InvalidValueError as error:
                logger.warning("a logged challenge candidate does not decode: %s", error)
        return found

    # ------------------------------------------------------------------ transactions

    @property
    def _asset(self) -> str:
        return self.plan.funding.supported.state.outcome[0].asset

    def _append(self, record: log_pb2.LogRecord) -> None:
        self.engine.log.append_batch([record])
        self.engine.deriver.catch_up()

    async def _challenge(self, challenge: ChainChallenge) -> None:
        async def send(on_submitted: OnSubmitted) -> object:
            return await self.chain.challenge(
                challenge.candidate, challenge.signature, challenge.proof, on_submitted=on_submitted
            )

        await self._transact(log_pb2.TRANSACTION_KIND_CHALLENGE, challenge.channel_id, send)

    async def _conclude(self, final: SignedState) -> None:
        async def send(on_submitted: OnSubmitted) -> object:
            return await self.chain.conclude(final, on_submitted=on_submitted)

        channel = channel_id_of(final.state.fixed)
        await self._transact(log_pb2.TRANSACTION_KIND_CONCLUDE, channel, send)

    async def _send_reclaim(self, request: ReclaimRequest) -> None:
        async def send(on_submitted: OnSubmitted) -> object:
            return await self.chain.reclaim(request, on_submitted=on_submitted)

        await self._transact(log_pb2.TRANSACTION_KIND_RECLAIM, self.ledger_id, send)

    async def _send_transfer(
        self, outcome: bytes, recorded: bytes, indices: tuple[int, ...]
    ) -> None:
        async def send(on_submitted: OnSubmitted) -> object:
            return await self.chain.transfer(
                _ASSET_INDEX, self.ledger_id, outcome, recorded, indices, on_submitted=on_submitted
            )

        await self._transact(log_pb2.TRANSACTION_KIND_TRANSFER, self.ledger_id, send)

    async def _transact(
        self, kind: int, channel: bytes, send: Callable[[OnSubmitted], Awaitable[object]]
    ) -> None:
        """Send one transaction, logging it once sent; a refusal is logged, then raised."""
        sent: list[Submitted] = []

        async def on_submitted(submitted: Submitted) -> None:
            sent.append(submitted)
            self.sent.append(submitted.operation)
            self._append(_submitted_record(self.plan.channel_id, kind, channel, submitted))

        try:
            await send(on_submitted)
        except ChainError as error:
            failed = sent[-1] if sent else None
            record = _submitted_record(self.plan.channel_id, kind, channel, failed, str(error))
            self._append(record)
            raise


def _submitted_record(
    virtual_id: bytes,
    kind: int,
    channel: bytes,
    submitted: Submitted | None,
    failure: str | None = None,
) -> log_pb2.LogRecord:
    """A SubmittedTransaction of a settlement (``failure``: the chain refused it)."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    tx = record.submitted_transaction
    tx.objective_id = DISPUTE_OBJECTIVE + virtual_id.hex()
    tx.tx_kind = kind  # type: ignore[assignment]
    tx.channel_id = channel
    if submitted is not None:
        tx.tx_hash = submitted.tx_hash
        tx.nonce = submitted.nonce
    if failure is not None:
        tx.failed = True
        tx.failure = failure
    return record


def _reclaim_request(
    ledger_id: bytes,
    ledger_state: State,
    index: int,
    source: tuple[SingleAssetExit, ...],
    target_hash: bytes,
    target: State,
) -> ReclaimRequest:
    """``reclaim`` of a finalized ``target`` (recorded with ``target_hash``) through the
    guarantee at ``index`` of the ledger's recorded outcome ``source``."""
    return ReclaimRequest(
        source_channel_id=ledger_id,
        source_state_hash=state_hash(ledger_state),
        source_outcome=encode_exit(source),
        source_asset_index=_ASSET_INDEX,
        index_of_target_in_source=index,
        target_state_hash=target_hash,
        target_outcome=encode_exit(target.outcome),
        target_asset_index=_ASSET_INDEX,
    )


def _finalized(status: ChannelStatus, now: int) -> bool:
    return status.finalizes_at != 0 and status.finalizes_at <= now


def _cleared(status: ChannelStatus) -> bool:
    """The adjudicator keeps no status: never challenged, or fully paid out."""
    return status.turn_num_record == 0 and status.finalizes_at == 0 and status.fingerprint == 0


async def _chain_time(chain: ChainService) -> int:
    """The latest block's timestamp: the next transaction runs at this time or later."""

    def latest() -> int:
        try:
            return int(chain.client.w3.eth.get_block("latest")["timestamp"])
        except Exception as error:
            raise ChainError(f"latest block: {type(error).__name__}: {error}") from error

    return await trio.to_thread.run_sync(latest)


# ---------------------------------------------------------------------- JSON-RPC

_REFUSAL_CODES = {
    Refusal.INVALID: ErrorCode.INVALID_PARAMS,
    Refusal.NOT_FOUND: ErrorCode.CHANNEL_NOT_FOUND,
    Refusal.CONFLICT: ErrorCode.INVALID_STATE,
}
_SETTLE = [
    Param("channel_id", BYTES32),
    Param("ledger_id", BYTES32, required=False, default=None),
]


def register_dispute_methods(registry: MethodRegistry, engine: Engine) -> None:
    """Add ``settle_payment_channel`` to ``registry``.

    The method advances the settlement as far as the chain allows without
    waiting: it registers the challenges (answering CHALLENGED with the time
    they finalize); called again after that time, it reclaims and pays out
    (SETTLED). Calling it again changes nothing that is done.
    """

    async def settle_payment_channel(
        channel_id: bytes, ledger_id: bytes | None
    ) -> dict[str, JsonValue]:
        try:
            settlement = await settle_on_chain(engine, channel_id, ledger_id=ledger_id, wait=False)
        except CommandRefusedError as error:
            raise RpcError(_REFUSAL_CODES[error.refusal], error.message) from None
        except ChainError as error:
            raise RpcError(ErrorCode.CHAIN_ERROR, str(error)) from None
        return settlement.to_json()

    registry.register(
        "settle_payment_channel",
        settle_payment_channel,
        params=_SETTLE,
        description="Enforce a payment channel on chain through our ledger that funds it.",
    )
