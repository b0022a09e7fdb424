"""What objectives ask the engine to do (effects) and what the engine tells them (events).

Effects form one closed union that the engine matches exhaustively. They are
idempotent: the engine may run one again after a crash, so each names exactly
what it wants (a signed state, a deposit with its expected holdings, a
challenge with its candidate) rather than a step relative to the present.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, assert_never

from node.core import SignedState, SingleAssetExit, channel_id, to_checksum_address
from node.core.errors import InvalidValueError, ProtocolError
from node.protocols._ids import ObjectiveId
from node.protocols._proposals import Proposal
from node.protocols._waiting import WaitingFor, is_done


class TransactionKind(enum.Enum):
    """The transactions objectives submit (the log's TransactionKind, same names)."""

    DEPOSIT = "DEPOSIT"
    CONCLUDE_AND_TRANSFER = "CONCLUDE_AND_TRANSFER"
    CHALLENGE = "CHALLENGE"
    CONCLUDE = "CONCLUDE"
    RECLAIM = "RECLAIM"
    TRANSFER = "TRANSFER"
    CHECKPOINT = "CHECKPOINT"


@dataclass(frozen=True)
class SendSignedState:
    """Record ``signed_state`` (it carries a new signature of ours) and send it to a peer.

    The engine appends the state to the log before sending; the derivation then
    shows it as our latest signed state, so the next crank does not ask again.
    Sending it twice is harmless: the receiver already has it.

    Attributes:
        recipient: the peer's address.
        objective_id: the objective the state belongs to.
        signed_state: the state with our signature (and any others known).
    """

    recipient: str
    objective_id: ObjectiveId
    signed_state: SignedState


@dataclass(frozen=True)
class RecordSignedState:
    """Record ``signed_state`` (it carries a new signature of ours) without sending it:
    a state this node is about to submit on chain, logged before it leaves.

    Attributes:
        signed_state: the state with our signature.
    """

    signed_state: SignedState


@dataclass(frozen=True)
class SubmitDeposit:
    """Call ``deposit(asset, channel_id, expected_held, amount)`` on the adjudicator.

    ``expected_held`` makes a re-run harmless: once the first deposit is mined
    the holdings differ and the adjudicator refuses the second.

    Attributes:
        channel_id: the channel to fund.
        asset: the token address (zero address: the native coin).
        expected_held: the holdings the deposit was computed from.
        amount: how much to deposit (> 0).
    """

    channel_id: bytes
    asset: str
    expected_held: int
    amount: int

    def __post_init__(self) -> None:
        assert self.amount > 0, "a deposit of nothing is never asked for"
        assert self.expected_held >= 0

    kind = TransactionKind.DEPOSIT


@dataclass(frozen=True)
class SubmitConcludeAndTransfer:
    """Call ``concludeAndTransferAllAssets(fixed part, signed final state)``.

    Running it again after it was mined is refused by the adjudicator (the
    channel is finalized): harmless.

    Attributes:
        signed_final: a final state signed by every participant.
    """

    signed_final: SignedState

    def __post_init__(self) -> None:
        state = self.signed_final.state
        assert state.is_final
        assert len(self.signed_final.signatures) == len(state.fixed.participants)

    kind = TransactionKind.CONCLUDE_AND_TRANSFER

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.signed_final.state.fixed)


@dataclass(frozen=True)
class SubmitConclude:
    """Call ``conclude(fixed part, signed final state)``: finalize a channel at once with
    a final state everyone signed (its funds then move through a guarantee).

    Attributes:
        signed_final: a final state signed by every participant.
    """

    signed_final: SignedState

    def __post_init__(self) -> None:
        assert self.signed_final.state.is_final

    kind = TransactionKind.CONCLUDE

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.signed_final.state.fixed)


@dataclass(frozen=True)
class SubmitChallenge:
    """Call ``challenge(fixed part, proof, candidate, challenger signature)``: what the
    adjudicator's ``challenge`` takes, a supported candidate, its proof, our signature.

    Attributes:
        candidate: the state the channel finalizes with unless a newer one is registered.
        proof: the states that, with the candidate, make it supported by the app.
        signature: the challenger's signature on the candidate's ``forceMove`` message.
    """

    candidate: SignedState
    proof: tuple[SignedState, ...]
    signature: bytes

    kind = TransactionKind.CHALLENGE

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.candidate.state.fixed)


@dataclass(frozen=True)
class SubmitCheckpoint:
    """Call ``checkpoint(fixed part, proof, candidate)``: record a newer supported state,
    which clears a challenge registered with an older one.

    Attributes:
        candidate: a state supported by everyone's signatures (or by ``proof``).
        proof: the states that, with the candidate, make it supported by the app.
    """

    candidate: SignedState
    proof: tuple[SignedState, ...]

    kind = TransactionKind.CHECKPOINT

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.candidate.state.fixed)


@dataclass(frozen=True)
class SubmitReclaim:
    """Call ``reclaim``: move a finalized target channel's outcome into the ledger that
    guarantees it, through the guarantee at ``target_index`` of the ledger's outcome.

    Attributes:
        ledger_id: the source (ledger) channel.
        target: the guaranteed channel (the key of this transaction).
        ledger_state_hash: the state hash the ledger's status records.
        ledger_outcome: the ledger's outcome the status records now.
        target_index: the guarantee's index in ``ledger_outcome``.
        target_state_hash: the target's recorded state hash (zero when concluded).
        target_outcome: the outcome the target finalized with.
    """

    ledger_id: bytes
    target: bytes
    ledger_state_hash: bytes
    ledger_outcome: tuple[SingleAssetExit, ...]
    target_index: int
    target_state_hash: bytes
    target_outcome: tuple[SingleAssetExit, ...]

    kind = TransactionKind.RECLAIM

    @property
    def channel_id(self) -> bytes:
        return self.target


@dataclass(frozen=True)
class SubmitTransfer:
    """Call ``transfer``: pay out a finalized channel's outcome (every allocation).

    Attributes:
        channel: the channel to pay out.
        state_hash: the state hash its status records.
        outcome: the outcome its status records.
    """

    channel: bytes
    state_hash: bytes
    outcome: tuple[SingleAssetExit, ...]

    kind = TransactionKind.TRANSFER

    @property
    def channel_id(self) -> bytes:
        return self.channel


@dataclass(frozen=True)
class ProposeLedgerUpdate:
    """Leader of ledger ``ledger_id``: propose ``proposal`` and send it to the follower.

    The engine runs ``ledger_propose`` on its view of the ledger and records
    the result; the next crank sees the proposal queued and does not ask again.

    Attributes:
        ledger_id: the ledger channel's id.
        proposal: an ``Add`` or ``Remove`` of a virtual channel's guarantee.
    """

    ledger_id: bytes
    proposal: Proposal


@dataclass(frozen=True)
class SignLedgerProposal:
    """Follower of ledger ``ledger_id``: countersign the head of the queue, which is
    ``proposal``, and send the countersignature to the leader (``ledger_sign_next``).

    Attributes:
        ledger_id: the ledger channel's id.
        proposal: the proposal this objective expects at the head of the queue.
    """

    ledger_id: bytes
    proposal: Proposal


Transaction = (
    SubmitDeposit
    | SubmitConcludeAndTransfer
    | SubmitConclude
    | SubmitChallenge
    | SubmitCheckpoint
    | SubmitReclaim
    | SubmitTransfer
)
LedgerEffect = ProposeLedgerUpdate | SignLedgerProposal
Effect = SendSignedState | RecordSignedState | LedgerEffect | Transaction


@dataclass(frozen=True)
class StateReceived:
    """A peer sent a signed state for this objective's channel.

    Attributes:
        sender: the peer's address (authenticated by the transport).
        signed_state: what it sent.
    """

    sender: str
    signed_state: SignedState

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender", to_checksum_address(self.sender, "sender"))


def _check_asset(kind: TransactionKind, asset: str | None) -> str | None:
    """A deposit names its asset; other transactions name none."""
    if kind is TransactionKind.DEPOSIT:
        if asset is None:
            raise InvalidValueError("asset", "a deposit record names its asset")
        return to_checksum_address(asset, "asset")
    if asset is not None:
        raise InvalidValueError("asset", f"a {kind.value} record names no asset")
    return None


@dataclass(frozen=True)
class TransactionSubmitted:
    """The log shows the engine submitted a transaction for this objective.

    Attributes:
        kind: which transaction.
        channel_id: the channel it was for (a reclaim: its target).
        asset: for a deposit, the asset deposited; None otherwise.
    """

    kind: TransactionKind
    channel_id: bytes
    asset: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "asset", _check_asset(self.kind, self.asset))


@dataclass(frozen=True)
class TransactionFailed:
    """The log shows the chain refused a submitted transaction (it reverted, for
    example a deposit made on stale holdings): the objective may ask for it again.

    Attributes:
        kind: which transaction.
        channel_id: the channel it was for (a reclaim: its target).
        asset: for a deposit, the asset; None otherwise.
    """

    kind: TransactionKind
    channel_id: bytes
    asset: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "asset", _check_asset(self.kind, self.asset))


Event = StateReceived | TransactionSubmitted | TransactionFailed


class _Submitting(Protocol):
    @property
    def id(self) -> ObjectiveId: ...
    @property
    def submitted(self) -> frozenset[tuple[TransactionKind, bytes]]: ...


SubmittingT = TypeVar("SubmittingT", bound=_Submitting)


def update_submitted(objective: SubmittingT, event: Event) -> SubmittingT:
    """An objective that only sends transactions (a defence, a guard, a settlement)
    after a transaction record of its own: ``submitted`` gains or loses it.

    Raises:
        ProtocolError: a state from a peer (such an objective takes none).
    """
    match event:
        case StateReceived():
            raise ProtocolError(f"{objective.id} takes no states from peers")
        case TransactionSubmitted():
            key = (event.kind, event.channel_id)
            return dataclasses.replace(objective, submitted=objective.submitted | {key})  # type: ignore[type-var]
        case TransactionFailed():
            key = (event.kind, event.channel_id)
            return dataclasses.replace(objective, submitted=objective.submitted - {key})  # type: ignore[type-var]
        case _:
            assert_never(event)


ObjectiveT = TypeVar("ObjectiveT", covariant=True)


@dataclass(frozen=True)
class CrankResult(Generic[ObjectiveT]):
    """What one crank returns.

    Attributes:
        objective: the objective after the crank.
        effects: what the engine should do now, in order.
        waiting_for: the pause point, recomputed on every crank; ``DONE`` at the end.
    """

    objective: ObjectiveT
    effects: tuple[Effect, ...]
    waiting_for: WaitingFor

    @property
    def done(self) -> bool:
        """Whether the objective has reached its end."""
        return is_done(self.waiting_for)
