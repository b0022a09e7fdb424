"""Ledger (consensus) channels at run time: proposals logged, sent, countersigned, re-sent.

An open ledger's run-time view (a ``LedgerChannel``) is its supported state in the
derivation module plus the proposals the engine state holds from that turn on.
The leader logs its proposal before sending it; the follower logs a proposal it
checked and queued, and countersigns only what it was asked to (a virtual
channel's objective expects it). A consensus reached on either side is logged as
an AcceptedState with both signatures, so the module's supported state follows
the ledger. Within a step, the ledgers it changed are kept as changed until the
module has folded the step's records.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Container, Iterable

import trio

from node.core import Signer, address_to_bytes, constants, to_checksum_address
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.derive import Deriver
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import Input, Reply, UpdateLedger
from node.engine._ledger_codec import (
    accepted_proposal_record,
    signed_proposal_from_proto,
    signed_proposal_to_proto,
)
from node.engine._records import accepted_state_record
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import ViewCache
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    Add,
    ChannelSnapshot,
    LedgerChannel,
    LedgerEffect,
    ObjectiveId,
    ObjectiveKind,
    Proposal,
    ProposeLedgerUpdate,
    QueuedProposal,
    Remove,
    SignedProposal,
    SignLedgerProposal,
    VirtualDefund,
    VirtualFund,
    add_for,
    apply_queued,
    ledger_next_to_sign,
    ledger_propose,
    ledger_receive,
    ledger_sign_next,
    ledger_unacknowledged,
    new_ledger_channel,
)

logger = logging.getLogger("node.engine")

LEDGER_OBJECTIVE = "Ledger-0x"  # objective_id of ledger payloads: the ledger's id

_CacheKey = tuple[ChannelSnapshot, tuple[SignedProposal, ...], tuple[SignedProposal, ...]]


class LedgersMixin:
    """The engine's ledger side (mixed into ``Engine``, which provides the state)."""

    address: str
    signer: Signer
    consensus_app: str
    state: EngineState
    views: ViewCache
    deriver: Deriver
    _inputs_send: trio.MemorySendChannel[Input]
    _log: Callable[[Step, log_pb2.LogRecord], None]

    def _init_ledgers(self) -> None:
        self._ledger_cache: dict[bytes, tuple[_CacheKey, LedgerChannel]] = {}
        self._step_ledgers: dict[bytes, LedgerChannel] = {}  # changed in this step
        self._ledger_buffered: dict[bytes, tuple[SignedProposal, ...]] = {}
        # Follower: what our objectives asked to countersign, per ledger (an ordered set).
        self._ledger_wanted: dict[bytes, dict[Proposal, None]] = {}
        # Every ledger the module knows: (ledger_generation when built, ids by peer).
        self._ledger_index: tuple[int, dict[str, tuple[bytes, ...]]] | None = None
        self._ledger_generation_seen = 0
        # When the other party of each ledger last moved it (trio's clock): a ledger
        # that moves is not sent its proposals again (they are on their way).
        self._ledger_heard_s: dict[bytes, float] = {}

    def _forget_step_caches(self) -> None:
        """The step's ledgers as the step left them are gone (rolled back or folded)."""
        self._step_ledgers.clear()
        self._ledger_cache.clear()
        self._forget_ledger_index()

    def _forget_ledger_index(self) -> None:
        """After the module folded (or rolled back) records: an index built since an
        objective that may bring a ledger changed may have been built too early."""
        if self.state.ledger_generation != self._ledger_generation_seen:
            self._ledger_generation_seen = self.state.ledger_generation
            self._ledger_index = None

    # ------------------------------------------------------------------ views

    def ledger_runtime(self, ledger_id: bytes) -> LedgerChannel | None:
        """Our ``LedgerChannel`` for an open ledger (None: no such open ledger)."""
        if ObjectiveId(ObjectiveKind.DIRECT_DEFUND, ledger_id) in self.state.objectives:
            return None  # closing: no more proposals
        changed = self._step_ledgers.get(ledger_id)
        if changed is not None:
            return changed
        snapshot = self.views.snapshot(ledger_id)
        if snapshot is None or snapshot.fixed.app_definition != self.consensus_app:
            return None
        supported = snapshot.supported
        if supported is None or supported.state.turn_num < 1 or supported.state.is_final:
            return None
        if snapshot.finalizes_at != 0:
            return None  # challenged or concluded on chain: the chain decides from here
        proposals = self.state.ledger_proposals.get(ledger_id, ())
        buffered = self._ledger_buffered.get(ledger_id, ())
        key = (snapshot, proposals, buffered)
        cached = self._ledger_cache.get(ledger_id)
        if cached is not None and all(a is b for a, b in zip(cached[0], key, strict=True)):
            return cached[1]
        try:
            ledger = _ledger_of(snapshot, proposals, buffered, self.address)
        except ProtocolError as error:
            logger.warning("ledger 0x%s is not usable: %s", ledger_id.hex(), error)
            return None
        self._ledger_cache[ledger_id] = (key, ledger)
        return ledger

    def _changed_ledger(self, ledger: LedgerChannel) -> None:
        self._step_ledgers[ledger.id] = ledger
        self._ledger_buffered[ledger.id] = ledger.buffered

    def _ledger_ids(self) -> dict[str, tuple[bytes, ...]]:
        """Every ledger channel the module knows, by participant, in ascending id order.

        Listing every channel costs a module call per page and grows with the virtual
        channels, so the list is kept until an objective that may bring a ledger changes.
        """
        generation = self.state.ledger_generation
        if self._ledger_index is None or self._ledger_index[0] != generation:
            app = address_to_bytes(self.consensus_app)
            by_party: dict[str, list[bytes]] = {}
            for view in self.deriver.channels():
                if view.fixed.app_definition != app:
                    continue
                for party in {to_checksum_address(p) for p in view.fixed.participants}:
                    by_party.setdefault(party, []).append(view.channel_id)
            index = {party: tuple(ids) for party, ids in by_party.items()}
            self._ledger_index = (generation, index)
        return self._ledger_index[1]

    def _ledger_snapshots(self) -> list[ChannelSnapshot]:
        """Every ledger channel the module knows."""
        ids = sorted({i for ledger_ids in self._ledger_ids().values() for i in ledger_ids})
        snapshots = (self.views.snapshot(ledger_id) for ledger_id in ids)
        return [snapshot for snapshot in snapshots if snapshot is not None]

    def _ledgers_with(self, peer: str) -> Iterable[LedgerChannel]:
        """Our open ledgers with ``peer``, by channel id."""
        index = self._ledger_ids()
        mine = set(index.get(self.address, ()))
        for ledger_id in index.get(peer, ()):
            if ledger_id not in mine:
                continue
            ledger = self.ledger_runtime(ledger_id)
            if ledger is not None:
                yield ledger

    def _ledgers_waiting(self) -> bool:
        """Whether a ledger we lead has proposals the follower has not countersigned."""
        for ledger_id in self.state.ledger_proposals:
            ledger = self.ledger_runtime(ledger_id)
            if ledger is not None and ledger.is_leader and ledger.queue:
                return True
        return False

    def _resend_ledger_proposals(self, step: Step) -> None:
        """The leader's unacknowledged proposals and the follower's last answers, again,
        on each ledger whose other party has been silent for a resend interval; the
        leader pays back the guarantees no objective will take (``_pay_back_strays``).

        A busy ledger is not sent everything again each interval: its hundreds of
        queued proposals would be checked again and answered again by the follower."""
        quiet_since = trio.current_time() - constants.ledger_resend_interval_ms / 1000
        for ledger_id in list(self.state.ledger_proposals):
            ledger = self.ledger_runtime(ledger_id)
            if ledger is None:
                continue
            if ledger.is_leader:
                ledger = self._pay_back_strays(step, ledger)
            if self._ledger_heard_s.get(ledger_id, -math.inf) > quiet_since:
                continue
            items = list(ledger_unacknowledged(ledger))
            if not ledger.is_leader and ledger.acknowledgement is not None:
                items.append(ledger.acknowledgement)
            for item in items:
                step.send(*_payload_to(ledger, item))

    def _pay_back_strays(self, step: Step, ledger: LedgerChannel) -> LedgerChannel:
        """Leader: propose paying back, as deposited, each guarantee queued on ``ledger``
        that its virtual channel's funding will never take: the funding ended (done
        through another ledger of the hop, or failed) before the follower countersigned.

        Both ends of a hop choose its ledger from what is open on their side; when a
        ledger opens on one side first, each end may propose the guarantee on a ledger
        it leads. The funding completes on one; the other proposal, which the follower
        never asked for, would stay at the head of its ledger's queue and block every
        later proposal there. The follower countersigns it together with its payback
        (``_stray_run``): a net change of nothing.
        """
        removed = {
            queued.signed.proposal.target
            for queued in ledger.queue
            if isinstance(queued.signed.proposal, Remove)
        }
        for queued in ledger.queue:
            add = queued.signed.proposal
            if not isinstance(add, Add) or add.guarantee.target in removed:
                continue
            entry = self.state.entry(ObjectiveId(ObjectiveKind.VIRTUAL_FUND, add.guarantee.target))
            if entry is None or entry.running:
                continue
            payback = Remove(add.guarantee.target, add.left_deposit)
            try:
                self._ledger_request(step, ProposeLedgerUpdate(ledger.id, payback))
            except CommandRefusedError as error:
                logger.info("ledger 0x%s: no payback yet: %s", ledger.id.hex()[:8], error.message)
                break
            removed.add(add.guarantee.target)
            ledger = self.ledger_runtime(ledger.id) or ledger
        return ledger

    def _pay_back_failed_fundings(self, step: Step, handled: set[bytes]) -> None:
        """Each virtual channel funding that failed in this step (``handled``: those seen
        already) before we signed its postfund state: the guarantees it placed in our
        ledgers on its path are paid back as deposited. Leader: propose it; follower:
        look at the ledger again (``_failed_payback`` lets us countersign it).

        No participant can have the channel funded without our postfund signature, so
        nothing was paid on it: what each end deposited is what it gets back. Without
        this, a funding that failed after one ledger of its path took the guarantee
        (another refused, or a peer gave up) left the money locked there for ever.
        """
        for objective_id in step.changed:
            target = objective_id.channel_id
            if objective_id.kind is not ObjectiveKind.VIRTUAL_FUND or target in handled:
                continue
            funding = self._failed_unsigned_funding(target)
            if funding is None:
                continue
            handled.add(target)
            participants = funding.fixed.participants
            me = funding.my_index
            for hop in (me - 1, me):
                if not 0 <= hop < len(participants) - 1:
                    continue
                add = add_for(funding.fixed, hop, funding.amounts)
                peer_index = hop + 1 if hop == me else hop
                peer = participants[peer_index]
                for ledger in list(self._ledgers_with(peer)):
                    if ledger.outcome.guarantee_of(target) != add.guarantee:
                        continue
                    if not ledger.is_leader:
                        self._ledger_sign_wanted(step, ledger.id)
                        continue
                    if self._signed_postfund(funding, peer_index):
                        # The follower may have the channel funded: it will not
                        # countersign, and the payback would block the ledger's queue.
                        logger.warning(
                            "ledger 0x%s: 0x%s stays guaranteed: its funding failed after"
                            " %s signed its postfund state",
                            ledger.id.hex()[:8],
                            target.hex()[:8],
                            peer,
                        )
                        continue
                    payback = Remove(target, add.left_deposit)
                    try:
                        self._ledger_request(step, ProposeLedgerUpdate(ledger.id, payback))
                    except CommandRefusedError as error:
                        logger.warning(
                            "ledger 0x%s: cannot pay back 0x%s: %s",
                            ledger.id.hex()[:8],
                            target.hex()[:8],
                            error.message,
                        )

    def _failed_unsigned_funding(self, target: bytes) -> VirtualFund | None:
        """Our funding of ``target`` if it failed before we signed its postfund state."""
        entry = self.state.entry(ObjectiveId(ObjectiveKind.VIRTUAL_FUND, target))
        if entry is None or entry.failure is None or not isinstance(entry.objective, VirtualFund):
            return None
        funding = entry.objective
        return None if self._signed_postfund(funding, funding.my_index) else funding

    def _signed_postfund(self, funding: VirtualFund, index: int) -> bool:
        """Whether participant ``index`` of the funded channel signed its postfund state
        (as far as our view of the channel shows)."""
        snapshot = self.views.snapshot(funding.channel_id)
        latest = snapshot.latest_signed_by(index) if snapshot is not None else None
        return latest is not None and latest.state.turn_num >= funding.setup_state(1).turn_num

    def _failed_payback(self, ledger: LedgerChannel, proposal: Proposal) -> bool:
        """Follower: whether ``proposal`` at the head of ``ledger``'s queue pays back, as
        deposited, a guarantee of our funding that failed before we signed its postfund
        state (the leader's ``_pay_back_failed_fundings``)."""
        if not isinstance(proposal, Remove):
            return False
        funding = self._failed_unsigned_funding(proposal.target)
        if funding is None:
            return False
        guarantee = ledger.outcome.guarantee_of(proposal.target)
        hops = range(len(funding.fixed.participants) - 1)
        return any(
            add.guarantee == guarantee and add.left_deposit == proposal.left_amount
            for add in (add_for(funding.fixed, hop, funding.amounts) for hop in hops)
        )

    # ------------------------------------------------------------------ async API

    async def update_ledger(self, effect: LedgerEffect) -> None:
        """Propose a ledger change (leader) or agree to countersign it (follower).

        Returns once the loop has logged what the request caused; the change itself
        completes when the other party answers.

        Raises:
            CommandRefusedError: no such open ledger, the wrong role, or a proposal
                that does not fit the ledger.
        """
        reply: Reply[bool] = Reply()
        await self._inputs_send.send(UpdateLedger(effect, reply))
        await reply.wait()

    # ------------------------------------------------------------------ in the loop

    def _take_ledger_update(self, step: Step, item: UpdateLedger) -> None:
        try:
            self._ledger_request(step, item.effect)
        except CommandRefusedError as error:
            item.reply.fail(error)
            return
        reply = item.reply
        step.answers.append(lambda: reply.answer(True))
        step.refusals.append(
            lambda: reply.fail(CommandRefusedError(Refusal.UNAVAILABLE, "not logged"))
        )

    def _ledger_request(self, step: Step, effect: LedgerEffect) -> None:
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
            self._ledger_wanted.setdefault(ledger.id, {})[effect.proposal] = None
            self._ledger_sign_wanted(step)
            return
        assert isinstance(effect, ProposeLedgerUpdate)
        if ledger.queues(effect.proposal):
            return  # proposed already: re-sent on the timer until acknowledged
        try:
            after, signed = ledger_propose(ledger, effect.proposal, self.signer)
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        self._log(step, accepted_proposal_record(signed))
        self._changed_ledger(after)
        step.send(*_payload_to(after, signed))
        logger.info("ledger 0x%s: proposed turn %d", ledger.id.hex()[:8], signed.turn_num)

    def _ledger_sign_wanted(self, step: Step, also: bytes | None = None) -> None:
        """Follower: countersign every queue head that was asked for, in turn, and each
        stray guarantee with its payback (``_stray_run``); ``also``: a ledger to look at
        even if nothing was asked of it (a proposal just arrived on it)."""
        ledger_ids = list(self._ledger_wanted)
        if also is not None and also not in self._ledger_wanted:
            ledger_ids.append(also)
        for ledger_id in ledger_ids:
            wanted = self._ledger_wanted.get(ledger_id, {})
            ledger = self.ledger_runtime(ledger_id)
            if ledger is None or ledger.is_leader:
                self._ledger_wanted.pop(ledger_id, None)
                continue
            while (head := ledger_next_to_sign(ledger)) is not None:
                if head.proposal in wanted or self._failed_payback(ledger, head.proposal):
                    run = [head.proposal]
                else:
                    run = _stray_run(ledger, wanted)
                if not run:
                    break
                for proposal in run:
                    wanted.pop(proposal, None)
                    ledger, answer = ledger_sign_next(ledger, proposal, self.signer)
                    self._touch_virtual(step, (proposal,))
                    self._log(step, accepted_state_record(ledger.consensus()))
                    self._changed_ledger(ledger)
                    step.send(*_payload_to(ledger, answer))
            if not wanted:
                self._ledger_wanted.pop(ledger_id, None)

    def _peer_ledger_proposal(self, step: Step, peer: str, payload: wire_pb2.Payload) -> None:
        """A proposal (we follow) or a countersignature (we lead) from the other party.

        Raises:
            PeerStateError: an unknown ledger, a sender who is not the other party, or
                what ``ledger_receive`` refuses.
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
        if after is not ledger:  # not a message sent again
            self._ledger_heard_s[ledger.id] = trio.current_time()
        self._touch_virtual(step, _moved_proposals(ledger, after, signed))
        if ledger.is_leader:
            if after.turn_num != ledger.turn_num:
                self._log(step, accepted_state_record(after.consensus()))
                self._changed_ledger(after)
            return
        ack = ledger.acknowledgement
        if signed.turn_num <= ledger.turn_num and ack is not None:
            step.send(*_payload_to(ledger, ack))  # our answer was lost
        if after == ledger:
            # Sent again: what we may sign now (a funding failed since) goes out.
            self._ledger_sign_wanted(step, ledger.id)
            return
        # A proposal that filled a gap drains the buffer: log what that queued as well.
        for queued in _newly_queued(ledger, after):
            self._log(step, accepted_proposal_record(queued.signed))
        self._changed_ledger(after)
        self._ledger_sign_wanted(step, after.id)

    def _touch_virtual(self, step: Step, proposals: Iterable[Proposal] | None = None) -> None:
        """Ledger proposals moved: the virtual objectives of their targets look again
        (None, or a payback that freed funds, or a crowded queue: every one of them)."""
        moved = None if proposals is None else list(proposals)
        if moved is None or any(isinstance(proposal, Remove) for proposal in moved):
            step.dirty.update(
                oid
                for oid, entry in self.state.running_entries()
                if isinstance(entry.objective, VirtualFund | VirtualDefund)
            )
            return
        for proposal in moved:
            target = proposal.target if isinstance(proposal, Remove) else proposal.guarantee.target
            for kind in (ObjectiveKind.VIRTUAL_FUND, ObjectiveKind.VIRTUAL_DEFUND):
                objective_id = ObjectiveId(kind, target)
                if objective_id in self.state.running:
                    step.dirty.add(objective_id)


def _moved_proposals(
    before: LedgerChannel, after: LedgerChannel, signed: SignedProposal
) -> Iterable[Proposal] | None:
    """The proposals a message moved on a ledger: the one it carries, those it let the
    leader see countersigned or the follower queue; None when it made room in the
    leader's full queue (the objectives that wait for room propose now)."""
    if (
        before.is_leader
        and len(before.queue) >= constants.ledger_proposals_queued_max
        and len(after.queue) < len(before.queue)
    ):
        return None
    moved = [signed.proposal]
    countersigned = before.queue[: max(0, after.turn_num - before.turn_num)]
    moved.extend(queued.signed.proposal for queued in countersigned)
    moved.extend(queued.signed.proposal for queued in _newly_queued(before, after))
    return moved


def _newly_queued(before: LedgerChannel, after: LedgerChannel) -> list[QueuedProposal]:
    """What ``after`` queued beyond ``before`` (a queue's turns are consecutive, from
    the turn after the consensus)."""
    return list(after.queue[max(0, before.latest()[0] - after.turn_num) :])


def _stray_run(ledger: LedgerChannel, wanted: Container[Proposal]) -> list[Proposal]:
    """Follower: the proposals to countersign together when the queue's head is a
    guarantee we did not ask for: the shortest run from the head in which every such
    guarantee is paid back as deposited by a later proposal of the run (the leader's
    ``_pay_back_strays``) and every other proposal was asked for. The ledger ends as if
    the stray guarantees had never been proposed. Empty: not such a run (yet)."""
    head = ledger.queue[0].signed.proposal if ledger.queue else None
    if not isinstance(head, Add) or not ledger.queues(
        Remove(head.guarantee.target, head.left_deposit)
    ):
        return []  # no run without the head's payback (and no scan of a long queue)
    run: list[Proposal] = []
    strays: set[tuple[bytes, int]] = set()  # (target, left deposit) not paid back yet
    for queued in ledger.queue:
        proposal = queued.signed.proposal
        run.append(proposal)
        if isinstance(proposal, Add) and proposal not in wanted:
            strays.add((proposal.guarantee.target, proposal.left_deposit))
        elif isinstance(proposal, Remove) and (proposal.target, proposal.left_amount) in strays:
            strays.discard((proposal.target, proposal.left_amount))
            if not strays:
                return run
        elif proposal not in wanted:
            return []
    return []


def _payload_to(ledger: LedgerChannel, signed: SignedProposal) -> tuple[str, wire_pb2.Payload]:
    payload = wire_pb2.Payload(objective_id=LEDGER_OBJECTIVE + ledger.id.hex())
    payload.ledger_proposal.CopyFrom(signed_proposal_to_proto(signed))
    return ledger.fixed.participants[1 - ledger.my_index], payload


def _ledger_of(
    snapshot: ChannelSnapshot,
    proposals: tuple[SignedProposal, ...],
    buffered: tuple[SignedProposal, ...],
    me: str,
) -> LedgerChannel:
    """A ledger's run-time view: its supported state and the proposals logged after it.

    The proposals were checked before they were logged, so they are not checked again.

    Raises:
        ProtocolError: the supported state is not a ledger state we are in.
    """
    assert snapshot.supported is not None
    ledger = new_ledger_channel(snapshot.supported, me)
    queue: list[QueuedProposal] = []
    acknowledgement = None
    turn, outcome = ledger.turn_num, ledger.outcome
    for signed in proposals:
        if signed.turn_num == ledger.turn_num and not ledger.is_leader:
            acknowledgement = SignedProposal(
                ledger.id, ledger.turn_num, signed.proposal, ledger.signatures[1]
            )
        elif signed.turn_num == turn + 1:
            outcome = apply_queued(outcome, signed.proposal)
            queue.append(QueuedProposal(signed, outcome))
            turn += 1
    pending = tuple(b for b in buffered if b.turn_num > turn + 1)
    return LedgerChannel(
        ledger.fixed,
        ledger.my_index,
        ledger.turn_num,
        ledger.outcome,
        ledger.signatures,
        tuple(queue),
        pending,
        acknowledgement,
    )
