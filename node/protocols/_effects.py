"""What objectives ask the engine to do (effects) and what the engine tells them (events).

Effects are idempotent: the engine may run one again after a crash, so each
names exactly what it wants (a signed state, a deposit with its expected
holdings) rather than a step to take relative to the present.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from node.core import SignedState, to_checksum_address
from node.core.errors import InvalidValueError
from node.protocols._ids import ObjectiveId
from node.protocols._waiting import WaitingFor, is_done

if TYPE_CHECKING:
    # The ledger module imports this one (through the shared checks).
    from node.protocols._ledger import Proposal


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


Effect = SendSignedState | SubmitDeposit | SubmitConcludeAndTransfer
# What virtual-channel objectives ask for: signed states and ledger changes, no transactions.
VirtualEffect = SendSignedState | ProposeLedgerUpdate | SignLedgerProposal


class TransactionKind(enum.Enum):
    """The transactions objectives submit (the log's TransactionKind, same names)."""

    DEPOSIT = "DEPOSIT"
    CONCLUDE_AND_TRANSFER = "CONCLUDE_AND_TRANSFER"


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
        channel_id: the channel it was for.
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
        channel_id: the channel it was for.
        asset: for a deposit, the asset; None otherwise.
    """

    kind: TransactionKind
    channel_id: bytes
    asset: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "asset", _check_asset(self.kind, self.asset))


Event = StateReceived | TransactionSubmitted | TransactionFailed

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


@dataclass(frozen=True)
class VirtualCrankResult(Generic[ObjectiveT]):
    """What one crank of a virtual-channel objective returns.

    Attributes:
        objective: the objective after the crank.
        effects: what the engine should do now, in order.
        waiting_for: the pause point, recomputed on every crank; ``DONE`` at the end.
    """

    objective: ObjectiveT
    effects: tuple[VirtualEffect, ...]
    waiting_for: WaitingFor

    @property
    def done(self) -> bool:
        """Whether the objective has reached its end."""
        return is_done(self.waiting_for)
