"""Cranking objectives in the step: views in, effects out, matched exhaustively.

Before each round the module folds what the step has logged so far, so a crank
reads the channels as they will be once the step is durable. The states an
objective signs are logged before any message carrying them is made; ledger
changes become records of the ledger side; transactions start after the write.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import assert_never

from node.core import SignedState, Signer, signed_state_to_proto, state_hash
from node.core.constants import engine_crank_rounds_max
from node.core.errors import ProtocolError
from node.engine._errors import CommandRefusedError
from node.engine._records import accepted_state_record, decision_record
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import ViewCache
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    Add,
    ChannelSnapshot,
    Defend,
    DirectDefund,
    DirectFund,
    Effect,
    Guard,
    LedgerChannel,
    LedgerEffect,
    Objective,
    ObjectiveId,
    ObjectiveKind,
    ObjectiveView,
    ProposeLedgerUpdate,
    RecordSignedState,
    SendSignedState,
    Settle,
    SignLedgerProposal,
    SubmitChallenge,
    SubmitCheckpoint,
    SubmitConclude,
    SubmitConcludeAndTransfer,
    SubmitDeposit,
    SubmitReclaim,
    SubmitTransfer,
    VirtualDefund,
    VirtualFund,
    add_for,
    apply_proposal,
    crank,
    guaranteed_targets,
    settled_ledger_state,
)

logger = logging.getLogger("node.engine")

_DETAIL_CHARS_MAX = 1000  # of a rejection's detail (as _peers)


class CrankingMixin:
    """The engine's objective side (mixed into ``Engine``, which provides the state)."""

    address: str
    signer: Signer
    state: EngineState
    views: ViewCache
    _chain_time_s: int
    _log: Callable[[Step, log_pb2.LogRecord], None]
    _fold_module: Callable[[Step], None]
    _ledger_request: Callable[[Step, LedgerEffect], None]
    _ledgers_with: Callable[[str], Iterable[LedgerChannel]]
    _ledger_snapshots: Callable[[], list[ChannelSnapshot]]
    _pay_back_failed_fundings: Callable[[Step, set[bytes]], None]

    def _crank_rounds(self, step: Step) -> None:
        """Crank until no objective asks to sign anything new; the guarantees of
        fundings that failed go back (``_pay_back_failed_fundings``)."""
        paid_back: set[bytes] = set()
        for _ in range(engine_crank_rounds_max):
            self._fold_module(step)
            self._pay_back_failed_fundings(step, paid_back)
            dirty = step.take_dirty()
            if not dirty:
                return
            for objective_id in dirty:
                self._crank_one(step, objective_id)
        # Our bug, not an input's: say so, and do not spin on it.
        logger.error("engine: objectives %s did not settle", sorted(map(str, step.dirty)))
        step.dirty.clear()

    def _crank_one(self, step: Step, objective_id: ObjectiveId) -> None:
        entry = self.state.entry(objective_id)
        if entry is None or not entry.running:
            return
        try:
            view = self._objective_view(entry.objective)
            result = crank(entry.objective, view, self.signer)
        except ProtocolError as error:
            self._fail(step, objective_id, f"crank: {error}")
            return
        if result.waiting_for is not entry.waiting_for or result.objective != entry.objective:
            if result.waiting_for is not entry.waiting_for:
                logger.info("%s: waiting for %s", objective_id, result.waiting_for.value)
            changed = dataclasses.replace(
                entry, objective=result.objective, waiting_for=result.waiting_for
            )
            self.state.put_entry(objective_id, changed)
        if result.done:
            step.changed.add(objective_id)
            if isinstance(entry.objective, DirectFund | DirectDefund):
                # A ledger opened or closed: each virtual channel funding or defunding
                # chooses its hops' ledgers again. Both ends of a hop must come to the
                # same one: one that chose before a ledger opened on its side would
                # otherwise wait as the follower of one ledger, the other end as the
                # follower of another, for ever.
                step.dirty.update(
                    oid
                    for oid, running in self.state.running_entries()
                    if isinstance(running.objective, VirtualFund | VirtualDefund)
                )
        for effect in result.effects:
            self._effect(step, objective_id, effect)

    def _effect(self, step: Step, objective_id: ObjectiveId, effect: Effect) -> None:
        match effect:
            case SendSignedState():
                self._record_signed(step, effect.signed_state)
                payload = wire_pb2.Payload(
                    objective_id=str(effect.objective_id),
                    signed_state=signed_state_to_proto(effect.signed_state),
                )
                step.send(effect.recipient, payload)
                step.dirty.add(objective_id)
            case RecordSignedState():
                self._record_signed(step, effect.signed_state)
                step.dirty.add(objective_id)
            case ProposeLedgerUpdate() | SignLedgerProposal():
                try:
                    self._ledger_request(step, effect)
                except CommandRefusedError as error:
                    self._fail(step, objective_id, f"ledger: {error.message}")
                    return
                step.dirty.add(objective_id)
            case (
                SubmitDeposit()
                | SubmitConcludeAndTransfer()
                | SubmitConclude()
                | SubmitChallenge()
                | SubmitCheckpoint()
                | SubmitReclaim()
                | SubmitTransfer()
            ):
                step.transactions.append((objective_id, effect))
            case _:
                assert_never(effect)

    def _record_signed(self, step: Step, signed: SignedState) -> None:
        """Log a state we signed, once per step: it is durable before it leaves."""
        key = state_hash(signed.state) + bytes(sorted(signed.signer_indices))
        if key in step.signed:
            return
        step.signed.add(key)
        self._log(step, accepted_state_record(signed))

    def _fail(self, step: Step, objective_id: ObjectiveId, reason: str) -> None:
        """Give up an objective, for the log and for whoever waits on it: the other
        participants are told (a policy rejection), so that theirs fail too instead of
        waiting for us for ever."""
        logger.warning("%s failed: %s", objective_id, reason)
        self._log(step, decision_record(objective_id, approved=False, reason=reason))
        step.changed.add(objective_id)
        entry = self.state.entry(objective_id)
        if entry is None or isinstance(entry.objective, Settle | Defend | Guard):
            return
        for peer in entry.objective.fixed.participants:
            if peer != self.address:
                answer = wire_pb2.Payload(objective_id=str(objective_id))
                answer.rejection.reason = wire_pb2.REJECTION_REASON_POLICY
                answer.rejection.detail = f"{objective_id} failed: {reason}"[:_DETAIL_CHARS_MAX]
                step.send(peer, answer)

    # ------------------------------------------------------------------ views

    def _objective_view(self, objective: Objective) -> ObjectiveView:
        """What ``objective``'s crank reads, from the module's views and our state."""
        snapshot = self.views.snapshot(_channel_of(objective)) or ChannelSnapshot(objective.fixed)
        match objective:
            case DirectFund():
                return ObjectiveView(snapshot)
            case DirectDefund():
                return ObjectiveView(snapshot, chain_time_s=self._chain_time_s)
            case VirtualFund() | VirtualDefund():
                participants = objective.fixed.participants
                me = objective.my_index
                asset = (
                    objective.amounts.asset
                    if isinstance(objective, VirtualFund)
                    else objective.final_amounts.asset
                )
                target = objective.channel_id
                last = len(participants) - 1
                left = (
                    self._ledger_with(
                        participants[me - 1], asset, target, _add_of(objective, me - 1), True
                    )
                    if me > 0
                    else None
                )
                right = (
                    self._ledger_with(
                        participants[me + 1], asset, target, _add_of(objective, me), False
                    )
                    if me < last
                    else None
                )
                return ObjectiveView(snapshot, left, right)
            case Settle():
                return self._settle_view(snapshot)
            case Defend():
                return ObjectiveView(snapshot, chain_time_s=self._chain_time_s)
            case Guard():
                watched = self.state.watched.get(objective.channel_id)
                return ObjectiveView(snapshot, chain_time_s=self._chain_time_s, watched=watched)
            case _:
                assert_never(objective)

    def _settle_view(self, ledger: ChannelSnapshot) -> ObjectiveView:
        guaranteed: dict[bytes, ChannelSnapshot] = {}
        try:
            targets = guaranteed_targets(settled_ledger_state(ledger))
        except ProtocolError:
            targets = []
        for target in targets:
            snapshot = self.views.snapshot(target)
            if snapshot is not None:
                guaranteed[target] = snapshot
        vouchers = {t: self.state.received[t] for t in targets if t in self.state.received}
        return ObjectiveView(
            ledger, guaranteed=guaranteed, vouchers=vouchers, chain_time_s=self._chain_time_s
        )

    def _ledger_with(
        self,
        peer: str,
        asset: str,
        target: bytes,
        add: Add | None = None,
        peer_is_left: bool = False,
    ) -> LedgerChannel | None:
        """Our open ledger in ``asset`` with ``peer`` for the virtual channel ``target``: the
        one whose outcome (or a proposal queued on it) guarantees the channel, else the
        first by channel id that can take ``add`` (the guarantee a funding asks for: each
        party can afford its share) and that the hop's left end leads, else the first
        that can take it, else the first. Never one in another asset: with a
        ledger in each asset to one peer, the other one would fail the channel; nor one
        where a party is short of its share while another ledger would do (the funding
        would fail, and with it the guarantee already placed on the other side of the
        path would stay locked).

        Raises:
            ProtocolError: the ledger it would be is being settled on chain (no guarantee
                goes in or out of it but there), or the one that guarantees the channel
                is no longer open (closing, challenged).
        """
        ledgers = [ledger for ledger in self._ledgers_with(peer) if ledger.outcome.asset == asset]
        chosen = next(
            (
                ledger
                for ledger in ledgers
                if ledger.latest()[1].guarantee_of(target) is not None or ledger.includes(target)
            ),
            None,
        )
        if chosen is None:
            for snapshot in self._ledger_snapshots():
                if set(snapshot.fixed.participants) == {self.address, peer} and _guarantees(
                    snapshot, target
                ):
                    raise ProtocolError(
                        f"ledger 0x{snapshot.channel_id.hex()} that funds the channel is"
                        " no longer open"
                    )
            # Led by the hop's left end first: that end proposes on the one it leads, and
            # the right end, which leads none of those, only follows, so the two ends do
            # not propose on two ledgers at once (a proposal stranded at the head of a
            # ledger's queue blocks every later one), nor both wait as followers.
            affordable = sorted(
                (ledger for ledger in ledgers if add is None or _takes(ledger, add)),
                key=lambda ledger: ledger.is_leader == peer_is_left,
            )
            chosen = next(iter(affordable), None) or next(iter(ledgers), None)
        if (
            chosen is not None
            and ObjectiveId(ObjectiveKind.SETTLE, chosen.id) in self.state.running
        ):
            raise ProtocolError(f"ledger 0x{chosen.id.hex()} is being settled on chain")
        return chosen

    def _resend_latest_state(self, step: Step, objective_id: ObjectiveId) -> None:
        """Our latest state of a running objective, to every other participant again."""
        entry = self.state.entry(objective_id)
        if (
            entry is None
            or not entry.running
            or isinstance(entry.objective, Settle | Defend | Guard)
        ):
            return
        snapshot = self.views.snapshot(_channel_of(entry.objective))
        if snapshot is None:
            return
        latest = snapshot.latest_signed_by(entry.objective.my_index)
        if latest is None or not _belongs(entry.objective, latest):
            return
        payload = wire_pb2.Payload(
            objective_id=str(objective_id), signed_state=signed_state_to_proto(latest)
        )
        for peer in entry.objective.fixed.participants:
            if peer != self.address:
                step.send(peer, payload)


def _add_of(objective: VirtualFund | VirtualDefund, left_index: int) -> Add | None:
    """The guarantee a funding asks of the ledger right of participant ``left_index``."""
    if isinstance(objective, VirtualFund):
        return add_for(objective.fixed, left_index, objective.amounts)
    return None


def _takes(ledger: LedgerChannel, add: Add) -> bool:
    """Whether ``ledger``'s latest outcome can take the guarantee ``add`` asks for."""
    try:
        apply_proposal(ledger.latest()[1], add)
    except ProtocolError:
        return False
    return True


def _guarantees(snapshot: ChannelSnapshot, target: bytes) -> bool:
    """Whether the snapshot's supported state guarantees ``target``."""
    supported = snapshot.supported
    return supported is not None and supported.state.pays(target)


def _channel_of(objective: Objective) -> bytes:
    """The channel an objective is cranked on (a settlement: its ledger)."""
    if isinstance(objective, Settle):
        return objective.ledger_id
    return objective.channel_id


def _belongs(objective: Objective, latest: SignedState) -> bool:
    """Whether ``latest`` is a state ``objective`` sends (so a peer expects it)."""
    match objective:
        case DirectFund() | VirtualFund():
            return latest.state in (objective.setup_state(0), objective.setup_state(1))
        case DirectDefund() | VirtualDefund():
            return latest.state == objective.final_state
        case Settle() | Defend() | Guard():
            return False
        case _:
            assert_never(objective)
