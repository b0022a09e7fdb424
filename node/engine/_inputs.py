"""What reaches the engine loop, as values: commands, peer deliveries, chain events,
transaction outcomes and timers.

Networking, the chain watcher, transaction tasks and the API only put these on the
loop's input channel; the loop alone logs, changes state and answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from node.core import FixedPart, SingleAssetExit, Voucher
from node.engine._errors import CommandRefusedError
from node.proto import log_pb2, wire_pb2
from node.protocols import LedgerEffect, ObjectiveId, Transaction, TransactionKind, VirtualFund

if TYPE_CHECKING:
    from node.chain import Submitted

Answer = TypeVar("Answer")


@dataclass
class Reply(Generic[Answer]):
    """The answer to a command: the loop gives it (or a refusal), then sets ``done``,
    once what the command caused is durable (or the command was refused)."""

    done: trio.Event = field(default_factory=trio.Event)
    result: tuple[Answer] | None = None
    error: CommandRefusedError | None = None

    def answer(self, value: Answer) -> None:
        assert not self.done.is_set()
        self.result = (value,)
        self.done.set()

    def fail(self, error: CommandRefusedError) -> None:
        assert not self.done.is_set()
        self.error = error
        self.done.set()

    async def wait(self) -> Answer:
        """The answer, or raise the refusal."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result[0]


@dataclass(frozen=True)
class CreateLedger:
    """Open a ledger channel with these parameters."""

    fixed: FixedPart
    outcome: tuple[SingleAssetExit, ...]
    reply: Reply[ObjectiveId]


@dataclass(frozen=True)
class CloseLedger:
    """Close the ledger channel ``channel_id``."""

    channel_id: bytes
    reply: Reply[ObjectiveId]


@dataclass(frozen=True)
class CreatePayment:
    """Open a virtual channel (the objective is checked already)."""

    objective: VirtualFund
    reply: Reply[ObjectiveId]


@dataclass(frozen=True)
class ClosePayment:
    """Close a virtual channel we pay on."""

    channel_id: bytes
    reply: Reply[ObjectiveId]


@dataclass(frozen=True)
class SettleChannel:
    """Enforce a payment channel on chain through our ledger that funds it."""

    channel_id: bytes
    ledger_id: bytes | None
    reply: Reply[ObjectiveId]


@dataclass(frozen=True)
class AddWatchtower:
    """Hand our channels to ``tower`` from now on (answers False: it was already ours)."""

    tower: str
    reply: Reply[bool]


@dataclass(frozen=True)
class UpdateLedger:
    """Propose a ledger change (leader) or agree to countersign one (follower)."""

    effect: LedgerEffect
    reply: Reply[bool]


@dataclass(frozen=True)
class Pay:
    """Pay ``amount`` more on a virtual channel; the answer is the voucher, logged
    (``send``: and sent to the payee)."""

    channel: bytes
    amount: int
    send: bool
    reply: Reply[Voucher]
    payments: int = 1  # how many payments ``amount`` sums (for metrics)


@dataclass(frozen=True)
class HandInVoucher:
    """A voucher the API received out of band; the answer is the new total received."""

    voucher: Voucher
    reply: Reply[int]


@dataclass(frozen=True)
class Query:
    """Read the engine's state: the loop runs ``read`` between steps, when nothing
    of a step is pending, and answers with what it returns."""

    read: Callable[[], object]
    reply: Reply[object]


Command = (
    CreateLedger
    | CloseLedger
    | CreatePayment
    | ClosePayment
    | SettleChannel
    | AddWatchtower
    | UpdateLedger
    | Pay
    | HandInVoucher
)


@dataclass(frozen=True)
class PeerMessages:
    """What a peer sent: new envelopes (to log, then acknowledge) and the ids of our
    messages it acknowledged.

    Attributes:
        sender: the peer's EIP-55 address, proven by the transport.
        envelopes: envelopes the transport never handed over before.
        acknowledged: ids of our messages the peer holds now.
        own_arena: the envelopes were copied out of the frames they came in, so that
            keeping them does not keep whole frames (a parsed frame's envelopes share
            its memory).
    """

    sender: str
    envelopes: tuple[wire_pb2.Envelope, ...]
    acknowledged: tuple[int, ...] = ()
    own_arena: bool = False


@dataclass(frozen=True)
class ChainInput:
    """A confirmed adjudicator event, or a BlockProcessed mark (with the block's time)."""

    event: log_pb2.ChainEvent


TxKey = tuple[ObjectiveId, TransactionKind, bytes, str | None]


@dataclass(frozen=True)
class TxSubmitted:
    """A transaction task sent a transaction (an ERC20 approval among them)."""

    key: TxKey
    transaction: Transaction
    submitted: Submitted


@dataclass(frozen=True)
class TxFinished:
    """A transaction task ended: mined (``failure`` None) or refused by the chain."""

    key: TxKey
    submitted: Submitted | None
    failure: str | None = None


@dataclass(frozen=True)
class Timer:
    """A delay the loop asked for is over.

    Attributes:
        reason: what it was for (``Timers`` kinds).
        key: what it concerns (an objective, a channel, a transaction).
    """

    reason: str
    key: object = None


Input = Command | Query | PeerMessages | ChainInput | TxSubmitted | TxFinished | Timer
