"""The consensus (ledger) channel: a two-party channel that funds others with guarantees.

participants[0] leads and participants[1] follows. Only the leader proposes,
which orders every update: ``Add`` locks funds in a guarantee for a target
channel, ``Remove`` pays a guarantee back. Each proposal yields the next turn;
the leader signs the whole resulting ledger state and the follower countersigns
it. The outcome is canonical: one asset, ``[leader, follower, guarantees by target]``.

So that lost or reordered messages never stall the ledger, a follower keeps
proposals that arrive ahead of a missing turn (it does not drop them) and takes
them in turn once the gap fills; the leader keeps what is unacknowledged so it
can send it again, and a follower answers a stale proposal with its latest
countersignature.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import TypeVar, assert_never

from node.core import (
    Allocation,
    FixedPart,
    Guarantee,
    InvalidSignatureError,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    constants,
    recover_state_signer,
)
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols._checks import participant_index
from node.protocols._proposals import Add, Proposal, Remove, SignedProposal

_K = TypeVar("_K")
_V = TypeVar("_V")
_S = TypeVar("_S")

LEADER_INDEX = 0
FOLLOWER_INDEX = 1


@dataclass(frozen=True)
class Balance:
    """A ledger party's simple allocation.

    Attributes:
        destination: the party's address as a 32-byte destination.
        amount: what it holds in the ledger outside guarantees.
    """

    destination: bytes
    amount: int


@dataclass(frozen=True)
class LedgerOutcome:
    """A ledger's outcome in its canonical parts.

    Attributes:
        asset: the one asset of the ledger.
        leader: the leader's balance.
        follower: the follower's balance.
        guarantees: the guarantees, sorted by target, each target once (what comes
            from outside is checked by ``ledger_outcome_from_exit``; proposals keep
            the order).
    """

    asset: str
    leader: Balance
    follower: Balance
    guarantees: tuple[Guarantee, ...] = ()
    # Filled on first use: the exit, and the states at each turn, of this outcome. A
    # ledger of many guarantees is signed, checked and logged at each of its turns.
    _exit: tuple[SingleAssetExit, ...] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _states: dict[tuple[FixedPart, int], State] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def to_exit(self) -> tuple[SingleAssetExit, ...]:
        """The outcome as it is signed: ``[leader, follower, guarantees by target]``."""
        if self._exit is None:
            allocations = [
                Allocation(self.leader.destination, self.leader.amount),
                Allocation(self.follower.destination, self.follower.amount),
                *(guarantee.to_allocation() for guarantee in self.guarantees),
            ]
            object.__setattr__(self, "_exit", (SingleAssetExit(self.asset, allocations),))
        assert self._exit is not None
        return self._exit

    def state(self, fixed: FixedPart, turn_num: int) -> State:
        """The ledger state of ``fixed`` at ``turn_num`` with this outcome (kept, so its
        hash is computed once)."""
        if self._states is None:
            object.__setattr__(self, "_states", {})
        assert self._states is not None
        key = (fixed, turn_num)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = State(fixed, b"", self.to_exit(), turn_num, False)
            _remember(_outcome_of_state, id(state), (state, self))
        return state

    def guarantee_of(self, target: bytes) -> Guarantee | None:
        """The guarantee for ``target``, or None."""
        guarantees = self.guarantees
        at = bisect.bisect_left(guarantees, target, key=_target_of)
        if at < len(guarantees) and guarantees[at].target == target:
            return guarantees[at]
        return None


def _target_of(guarantee: Guarantee) -> bytes:
    return guarantee.target


# A ledger's run-time view is rebuilt from its supported state and its proposals after
# every step. These keep it made of the same values: the outcome a ledger state was
# built from, and the outcome each proposal yields after another (by identity: the
# key objects are kept alive with them), so that the states of a ledger of many
# guarantees are built, and their hashes computed, once. The least recently used go
# first past the bound (a busy hub's queues hold hundreds of proposals per ledger).
_KNOWN_OUTCOMES_MAX = 2048
_outcome_of_state: dict[int, tuple[State, LedgerOutcome]] = {}
_applied: dict[tuple[int, Proposal], tuple[LedgerOutcome, LedgerOutcome]] = {}


def _remember(memo: dict[_K, _V], key: _K, entry: _V) -> None:
    if len(memo) >= _KNOWN_OUTCOMES_MAX:
        del memo[next(iter(memo))]  # the least recently used
    memo[key] = entry


def _recall(memo: dict[_K, tuple[_S, _V]], key: _K, source: _S) -> _V | None:
    """What ``memo`` holds for ``key`` if it was made from ``source`` itself; it becomes
    the most recently used."""
    entry = memo.pop(key, None)
    if entry is None or entry[0] is not source:
        return None
    memo[key] = entry
    return entry[1]


def ledger_outcome_from_exit(
    fixed: FixedPart, outcome: tuple[SingleAssetExit, ...]
) -> LedgerOutcome:
    """Read a ledger outcome, insisting on the canonical form.

    Raises:
        ProtocolError: not one asset, not leader then follower then guarantees
            sorted by target, or an allocation of another shape.
    """
    if len(outcome) != 1:
        raise ProtocolError(f"outcome: a ledger has one asset, not {len(outcome)}")
    (asset_exit,) = outcome
    allocations = asset_exit.allocations
    expected = [address_to_destination(address) for address in fixed.participants]
    if len(allocations) < 2 or [a.destination for a in allocations[:2]] != expected:
        raise ProtocolError("outcome: a ledger starts with the leader's then the follower's")
    simple = constants.allocation_type_simple
    if any(
        allocation.allocation_type != simple or allocation.metadata
        for allocation in allocations[:2]
    ):
        raise ProtocolError("outcome: the parties' allocations must be simple")
    guarantees = tuple(Guarantee.from_allocation(allocation) for allocation in allocations[2:])
    targets = [guarantee.target for guarantee in guarantees]
    if targets != sorted(set(targets)):
        raise ProtocolError("outcome: guarantees must be sorted by target, each once")
    if asset_exit.asset_type != 0 or asset_exit.asset_metadata:
        raise ProtocolError("outcome: a ledger's asset metadata is empty")
    leader, follower = (Balance(a.destination, a.amount) for a in allocations[:2])
    return LedgerOutcome(asset_exit.asset, leader, follower, guarantees)


def apply_proposal(outcome: LedgerOutcome, proposal: Proposal) -> LedgerOutcome:
    """The ledger outcome after ``proposal``.

    Raises:
        ProtocolError: the proposal does not fit: unknown or duplicate target,
            parties other than the ledger's, or a party short of funds.
    """
    match proposal:
        case Add():
            return _apply_add(outcome, proposal)
        case Remove():
            return _apply_remove(outcome, proposal)
        case _:
            assert_never(proposal)


def apply_queued(outcome: LedgerOutcome, proposal: Proposal) -> LedgerOutcome:
    """``apply_proposal`` for a proposal queued on a ledger: the outcome is kept, and the
    same proposal after the same outcome gives it again (the ledger rebuilt after a
    step is made of the values it was made of, their states hashed once). Checks of
    what a proposal would give use ``apply_proposal``, which keeps nothing.

    Raises:
        ProtocolError: as ``apply_proposal``.
    """
    known = _recall(_applied, (id(outcome), proposal), outcome)
    if known is not None:
        return known
    after = apply_proposal(outcome, proposal)
    _remember(_applied, (id(outcome), proposal), (outcome, after))
    return after


def _sides(outcome: LedgerOutcome, left: bytes, right: bytes) -> bool:
    """Whether the leader is on the left of (left, right); raises if they are not the parties."""
    parties = (outcome.leader.destination, outcome.follower.destination)
    if (left, right) == parties:
        return True
    if (right, left) == parties:
        return False
    raise ProtocolError("proposal: left and right must be the ledger's two parties")


def _apply_add(outcome: LedgerOutcome, add: Add) -> LedgerOutcome:
    guarantee = add.guarantee
    if outcome.guarantee_of(guarantee.target) is not None:
        raise ProtocolError(f"proposal: 0x{guarantee.target.hex()} is guaranteed already")
    if len(outcome.guarantees) >= constants.ledger_guarantees_max:
        raise ProtocolError(f"proposal: {constants.ledger_guarantees_max} guarantees at most")
    if not 0 <= add.left_deposit <= guarantee.amount:
        raise ProtocolError(f"proposal: left deposit {add.left_deposit} is not in [0, amount]")
    leader_left = _sides(outcome, guarantee.left, guarantee.right)
    right_deposit = guarantee.amount - add.left_deposit
    leader_pays, follower_pays = (
        (add.left_deposit, right_deposit) if leader_left else (right_deposit, add.left_deposit)
    )
    if outcome.leader.amount < leader_pays or outcome.follower.amount < follower_pays:
        raise ProtocolError("proposal: a party cannot afford its share of the guarantee")
    at = bisect.bisect_left(outcome.guarantees, guarantee.target, key=_target_of)
    guarantees = (*outcome.guarantees[:at], guarantee, *outcome.guarantees[at:])
    return LedgerOutcome(
        outcome.asset,
        Balance(outcome.leader.destination, outcome.leader.amount - leader_pays),
        Balance(outcome.follower.destination, outcome.follower.amount - follower_pays),
        guarantees,
    )


def _apply_remove(outcome: LedgerOutcome, remove: Remove) -> LedgerOutcome:
    guarantee = outcome.guarantee_of(remove.target)
    if guarantee is None:
        raise ProtocolError(f"proposal: no guarantee for 0x{remove.target.hex()}")
    if not 0 <= remove.left_amount <= guarantee.amount:
        raise ProtocolError(f"proposal: left amount {remove.left_amount} is not in [0, amount]")
    leader_left = _sides(outcome, guarantee.left, guarantee.right)
    right_amount = guarantee.amount - remove.left_amount
    to_leader, to_follower = (
        (remove.left_amount, right_amount) if leader_left else (right_amount, remove.left_amount)
    )
    return LedgerOutcome(
        outcome.asset,
        Balance(outcome.leader.destination, outcome.leader.amount + to_leader),
        Balance(outcome.follower.destination, outcome.follower.amount + to_follower),
        tuple(g for g in outcome.guarantees if g is not guarantee),
    )


@dataclass(frozen=True)
class QueuedProposal:
    """A proposal after the consensus turn, with the outcome it yields."""

    signed: SignedProposal
    outcome: LedgerOutcome


@dataclass(frozen=True)
class LedgerChannel:
    """One party's view of a ledger channel.

    Attributes:
        fixed: the ledger's fixed part (two participants).
        my_index: 0 for the leader, 1 for the follower.
        turn_num: the turn of the consensus: the latest state both signed.
        outcome: the consensus outcome.
        signatures: the leader's and the follower's signatures on the consensus state.
        queue: proposals after the consensus, in consecutive turns. The leader's
            are unacknowledged; the follower's are checked and await its signature.
        buffered: follower only: proposals that arrived ahead of a missing
            turn, by turn; not yet checked (their previous state is unknown).
        acknowledgement: follower only: its latest countersignature, to answer
            a proposal sent again because the first answer was lost.
    """

    fixed: FixedPart
    my_index: int
    turn_num: int
    outcome: LedgerOutcome
    signatures: tuple[bytes, bytes]
    queue: tuple[QueuedProposal, ...] = ()
    buffered: tuple[SignedProposal, ...] = ()
    acknowledgement: SignedProposal | None = None
    # Filled on first use by ``queues``; not part of equality.
    _queued: frozenset[Proposal] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        assert self.my_index in (LEADER_INDEX, FOLLOWER_INDEX)
        # Consecutive turns from the consensus on (queues only grow at the end and
        # shrink at the head, so the ends tell; a ledger is rebuilt at every message).
        if self.queue:
            assert self.queue[0].signed.turn_num == self.turn_num + 1
            assert self.queue[-1].signed.turn_num == self.turn_num + len(self.queue)
        assert self.my_index == FOLLOWER_INDEX or not self.buffered

    @property
    def id(self) -> bytes:
        """The ledger channel's id."""
        return channel_id(self.fixed)

    @property
    def is_leader(self) -> bool:
        """Whether we lead (propose) on this ledger."""
        return self.my_index == LEADER_INDEX

    def state(self, turn_num: int, outcome: LedgerOutcome) -> State:
        """The ledger state of ``turn_num`` with ``outcome``."""
        return outcome.state(self.fixed, turn_num)

    def consensus(self) -> SignedState:
        """The latest state both parties signed, with both signatures."""
        state = self.state(self.turn_num, self.outcome)
        return SignedState(state, enumerate(self.signatures))

    def latest(self) -> tuple[int, LedgerOutcome]:
        """The turn and outcome after every queued proposal."""
        if self.queue:
            return self.queue[-1].signed.turn_num, self.queue[-1].outcome
        return self.turn_num, self.outcome

    def queues(self, proposal: Proposal) -> bool:
        """Whether ``proposal`` is queued after the consensus (asked by every funding
        that cranks, so kept as a set rather than searched in the queue)."""
        if self._queued is None:
            queued = frozenset(queued.signed.proposal for queued in self.queue)
            object.__setattr__(self, "_queued", queued)
        assert self._queued is not None
        return proposal in self._queued

    def includes(self, target: bytes) -> bool:
        """Whether the consensus outcome guarantees ``target``."""
        return self.outcome.guarantee_of(target) is not None


def new_ledger_channel(supported: SignedState, my_address: str) -> LedgerChannel:
    """A ledger channel from its supported state (the DirectFund postfund, at first).

    The signatures are not recovered again: a supported state comes from the log,
    whose signatures the host checked before it accepted the state.

    Raises:
        ProtocolError: not two participants, not signed by both, an outcome
            not in canonical form, or we are not a participant.
    """
    fixed = supported.state.fixed
    if len(fixed.participants) != 2:
        raise ProtocolError(f"participants: a ledger has 2, not {len(fixed.participants)}")
    my_index = participant_index(fixed, my_address)
    if supported.signer_indices != {LEADER_INDEX, FOLLOWER_INDEX}:
        raise ProtocolError("supported: a ledger state needs both parties' signatures")
    if supported.state.is_final or supported.state.app_data:
        raise ProtocolError("supported: a ledger state is not final and has no app data")
    known = _recall(_outcome_of_state, id(supported.state), supported.state)
    # A state built from an outcome is canonical already.
    outcome = known or ledger_outcome_from_exit(fixed, supported.state.outcome)
    leader, follower = (signature for _, signature in supported.signatures)
    return LedgerChannel(fixed, my_index, supported.state.turn_num, outcome, (leader, follower))


def ledger_propose(
    channel: LedgerChannel, proposal: Proposal, signer: Signer
) -> tuple[LedgerChannel, SignedProposal]:
    """Leader: apply ``proposal`` after every queued one, sign the result, queue it.

    Returns:
        The channel and the signed proposal to send to the follower.

    Raises:
        ProtocolError: we do not lead, the queue is full, or the proposal does not fit.
    """
    if not channel.is_leader:
        raise ProtocolError("proposal: only the leader proposes")
    _check_signer(channel, signer)
    if len(channel.queue) >= constants.ledger_proposals_queued_max:
        raise ProtocolError(
            f"proposal: {constants.ledger_proposals_queued_max} proposals await acknowledgement"
        )
    turn_num, outcome = channel.latest()
    after = apply_queued(outcome, proposal)
    signature = signer.sign_state(channel.state(turn_num + 1, after))
    signed = SignedProposal(channel.id, turn_num + 1, proposal, signature)
    queued = (*channel.queue, QueuedProposal(signed, after))
    return dataclasses.replace(channel, queue=queued), signed


def ledger_unacknowledged(channel: LedgerChannel) -> tuple[SignedProposal, ...]:
    """Leader: the proposals the follower has not countersigned, to send again."""
    return tuple(queued.signed for queued in channel.queue) if channel.is_leader else ()


def ledger_next_to_sign(channel: LedgerChannel) -> SignedProposal | None:
    """Follower: the proposal at the head of the queue, the only one it may sign next."""
    if channel.is_leader or not channel.queue:
        return None
    return channel.queue[0].signed


def ledger_sign_next(
    channel: LedgerChannel, expected: Proposal, signer: Signer
) -> tuple[LedgerChannel, SignedProposal]:
    """Follower: countersign the head of the queue, which must be ``expected``.

    Returns:
        The channel at the new consensus and the countersignature for the leader.

    Raises:
        ProtocolError: we lead, nothing is queued, or the head is not ``expected``.
    """
    if channel.is_leader:
        raise ProtocolError("proposal: the leader does not countersign")
    _check_signer(channel, signer)
    if not channel.queue:
        raise ProtocolError("proposal: no proposal awaits a signature")
    head = channel.queue[0]
    if head.signed.proposal != expected:
        raise ProtocolError(
            f"proposal: turn {head.signed.turn_num} is not the one expected: {expected}"
        )
    turn_num = head.signed.turn_num
    signature = signer.sign_state(channel.state(turn_num, head.outcome))
    answer = SignedProposal(channel.id, turn_num, head.signed.proposal, signature)
    after = dataclasses.replace(
        channel,
        turn_num=turn_num,
        outcome=head.outcome,
        signatures=(head.signed.signature, signature),
        queue=channel.queue[1:],
        acknowledgement=answer,
    )
    return after, answer


def ledger_receive(channel: LedgerChannel, signed: SignedProposal) -> LedgerChannel:
    """Take a proposal (follower) or a countersignature (leader) from the other party.

    Duplicates and stale turns leave the channel unchanged, so the leader may
    send again freely; a follower answers a stale one with its ``acknowledgement``.

    Raises:
        PeerStateError: another ledger, a wrong signature, a proposal that does
            not fit, two different proposals for one turn, or too many ahead.
    """
    if signed.ledger_id != channel.id:
        raise PeerStateError(
            PeerFault.UNKNOWN_CHANNEL,
            f"proposal for ledger 0x{signed.ledger_id.hex()}, not 0x{channel.id.hex()}",
        )
    if channel.is_leader:
        return _leader_receive(channel, signed)
    return _follower_receive(channel, signed)


def _check_signer(channel: LedgerChannel, signer: Signer) -> None:
    if signer.address != channel.fixed.participants[channel.my_index]:
        raise ProtocolError(f"signer: {signer.address} is not participant {channel.my_index}")


def _check_signature(
    channel: LedgerChannel, signed: SignedProposal, outcome: LedgerOutcome, index: int
) -> None:
    state = channel.state(signed.turn_num, outcome)
    try:
        signer = recover_state_signer(state, signed.signature)
    except InvalidSignatureError as error:
        raise PeerStateError(PeerFault.BAD_SIGNATURE, f"turn {signed.turn_num}: {error}") from error
    if signer != channel.fixed.participants[index]:
        raise PeerStateError(
            PeerFault.BAD_SIGNATURE,
            f"turn {signed.turn_num}: signed by {signer}, not participant {index}",
        )


def _leader_receive(channel: LedgerChannel, signed: SignedProposal) -> LedgerChannel:
    if signed.turn_num <= channel.turn_num:
        return channel  # acknowledged already
    position = signed.turn_num - channel.turn_num - 1
    if position >= len(channel.queue):
        raise PeerStateError(PeerFault.WRONG_TURN, f"turn {signed.turn_num} was never proposed")
    queued = channel.queue[position]
    if queued.signed.proposal != signed.proposal:
        raise PeerStateError(
            PeerFault.MALFORMED, f"turn {signed.turn_num} countersigns another proposal"
        )
    _check_signature(channel, signed, queued.outcome, FOLLOWER_INDEX)
    return dataclasses.replace(
        channel,
        turn_num=signed.turn_num,
        outcome=queued.outcome,
        signatures=(queued.signed.signature, signed.signature),
        queue=channel.queue[position + 1 :],
    )


def _follower_receive(channel: LedgerChannel, signed: SignedProposal) -> LedgerChannel:
    latest_turn, latest_outcome = channel.latest()
    if signed.turn_num <= channel.turn_num:
        return channel  # signed already
    if signed.turn_num <= latest_turn:
        queued = channel.queue[signed.turn_num - channel.turn_num - 1]
        if queued.signed != signed:
            raise PeerStateError(
                PeerFault.MALFORMED, f"the leader sent two proposals for turn {signed.turn_num}"
            )
        return channel
    if signed.turn_num > latest_turn + 1:
        return _buffer(channel, signed, latest_turn)
    return _drain_buffer(_append_checked(channel, signed, latest_outcome))


def _append_checked(
    channel: LedgerChannel, signed: SignedProposal, previous: LedgerOutcome
) -> LedgerChannel:
    """Follower: queue the next proposal once it fits and the leader signed its result."""
    if len(channel.queue) >= constants.ledger_proposals_queued_max:
        raise PeerStateError(
            PeerFault.MALFORMED,
            f"{constants.ledger_proposals_queued_max} proposals await our signature",
        )
    try:
        after = apply_queued(previous, signed.proposal)
    except ProtocolError as error:
        raise PeerStateError(PeerFault.MALFORMED, f"turn {signed.turn_num}: {error}") from error
    _check_signature(channel, signed, after, LEADER_INDEX)
    return dataclasses.replace(channel, queue=(*channel.queue, QueuedProposal(signed, after)))


def _buffer(channel: LedgerChannel, signed: SignedProposal, latest_turn: int) -> LedgerChannel:
    """Follower: keep a proposal that arrived ahead of a missing turn."""
    if signed.turn_num > latest_turn + constants.ledger_proposals_buffered_max:
        raise PeerStateError(
            PeerFault.WRONG_TURN, f"turn {signed.turn_num} is too far ahead of {latest_turn}"
        )
    for waiting in channel.buffered:
        if waiting.turn_num == signed.turn_num:
            if waiting != signed:
                raise PeerStateError(
                    PeerFault.MALFORMED,
                    f"the leader sent two proposals for turn {signed.turn_num}",
                )
            return channel
    buffered = tuple(sorted((*channel.buffered, signed), key=lambda item: item.turn_num))
    return dataclasses.replace(channel, buffered=buffered)


def _drain_buffer(channel: LedgerChannel) -> LedgerChannel:
    """Follower: move buffered proposals that are now next in turn into the queue.

    A buffered proposal that turns out not to fit or not to be the leader's is
    dropped: it was never acknowledged, so the leader sends the real one again.
    """
    while channel.buffered:
        latest_turn, latest_outcome = channel.latest()
        head = channel.buffered[0]
        # Buffered turns were ahead of the queue, and each append drains the next one.
        assert head.turn_num > latest_turn
        if head.turn_num > latest_turn + 1:
            break
        channel = dataclasses.replace(channel, buffered=channel.buffered[1:])
        try:
            channel = _append_checked(channel, head, latest_outcome)
        except PeerStateError:
            break
    return channel
