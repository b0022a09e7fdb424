"""What reaches the engine loop: commands, chain events, peer deliveries, wake-ups."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from node.core import FixedPart, SingleAssetExit, Voucher
from node.engine._errors import CommandRefusedError
from node.proto import log_pb2
from node.protocols import ObjectiveId, ProposeLedgerUpdate, SignLedgerProposal, VirtualFund


@dataclass
class Reply:
    """The answer to a command: the loop sets ``objective_id`` when it accepts the
    command and ``done`` once its record is durable, or ``fail`` when it refuses it."""

    done: trio.Event = field(default_factory=trio.Event)
    objective_id: ObjectiveId | None = None
    error: CommandRefusedError | None = None

    def fail(self, error: CommandRefusedError) -> None:
        assert not self.done.is_set()
        self.error = error
        self.done.set()

    async def wait(self) -> ObjectiveId:
        """The objective id, or raise the refusal."""
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.objective_id is not None
        return self.objective_id


@dataclass(frozen=True)
class CreateLedger:
    """Open a ledger channel with these parameters."""

    fixed: FixedPart
    outcome: tuple[SingleAssetExit, ...]
    reply: Reply


@dataclass(frozen=True)
class CloseLedger:
    """Close the ledger channel ``channel_id``."""

    channel_id: bytes
    reply: Reply


@dataclass(frozen=True)
class ChainInput:
    """A confirmed adjudicator event (or a BlockProcessed mark)."""

    event: log_pb2.ChainEvent


@dataclass(frozen=True)
class PeerInput:
    """A transport delivered (and logged) a batch from a peer.

    Attributes:
        sender: the peer.
        envelopes: how many messages.
        paid_on: the channels its vouchers pay on (their records are in the log now).
    """

    sender: str
    envelopes: int
    paid_on: frozenset[bytes] = frozenset()


@dataclass(frozen=True)
class Wake:
    """Something outside the loop changed (a transaction settled, a retry is due)."""

    reason: str


@dataclass(frozen=True)
class CreatePayment:
    """The API asks to open a virtual channel (the objective is checked already)."""

    objective: VirtualFund
    reply: Reply


@dataclass(frozen=True)
class ClosePayment:
    """The API asks to close a virtual channel we pay on."""

    channel_id: bytes
    reply: Reply


@dataclass
class LedgerRequest:
    """Change a ledger: propose (leader) or agree to countersign (follower) a proposal.

    The loop sets ``error`` when it refuses, then ``done``.
    """

    effect: ProposeLedgerUpdate | SignLedgerProposal
    done: trio.Event = field(default_factory=trio.Event)
    error: CommandRefusedError | None = None


@dataclass
class PayRequest:
    """Pay ``amount`` more on a virtual channel; the loop sets ``paid`` or ``error``."""

    channel: bytes
    amount: int
    send: bool = True  # False: the caller hands the voucher over itself
    done: trio.Event = field(default_factory=trio.Event)
    paid: int = 0
    voucher: Voucher | None = None
    error: CommandRefusedError | None = None


@dataclass
class VoucherHandedIn:
    """A voucher the API received out of band; the loop sets ``received`` or ``error``."""

    voucher: Voucher
    done: trio.Event = field(default_factory=trio.Event)
    received: int = 0
    error: CommandRefusedError | None = None


@dataclass(frozen=True)
class LedgerTick:
    """Time to send unacknowledged ledger proposals again."""


Input = (
    CreateLedger
    | CloseLedger
    | CreatePayment
    | ClosePayment
    | ChainInput
    | PeerInput
    | Wake
    | LedgerRequest
    | PayRequest
    | VoucherHandedIn
    | LedgerTick
)
