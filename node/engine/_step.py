"""One step of the engine loop: what its inputs caused, gathered until the one write.

A step drains a bounded batch of inputs, validates each against the current
state, builds the records they cause (folding each into the engine's state and,
before a crank, into the derivation module), cranks the objectives they touch,
and writes every record in one batch with one fsync. Only then do its effects
run: messages leave, acks go out, transactions start, callers get answers. If
the write fails, everything here is dropped and the state is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from node.core import Voucher
from node.log import PreparedBatch
from node.proto import log_pb2, wire_pb2
from node.protocols import ObjectiveId, Transaction

if TYPE_CHECKING:
    from node.engine._inputs import Reply


@dataclass
class PendingPayments:
    """Payments on one channel taken in a step: the total they bring the channel to,
    its payee, and each payment's caller."""

    payee: str
    total: int
    replies: list[Reply[Voucher]] = field(default_factory=list)


@dataclass
class Step:
    """What one step has built so far.

    Attributes:
        records: the records to write, in order.
        prepared: ``records[:folded]`` numbered and linked after the log's head.
        folded: how many records the derivation module has folded.
        outgoing: payloads to send, by recipient, in order (made into messages at the end).
        messages: per peer, the messages logged in this step: (id, Envelope bytes).
        received: per peer, the ids of its messages this step logs as handled.
        transactions: transactions objectives asked for.
        answers: what to tell callers once the records are durable.
        refusals: what to tell callers if the write fails.
        dirty: objectives to crank before the write.
        touched: channels whose derived view may have changed (notifications).
        changed: objectives that finished or failed in this step.
        signed: hashes of the states this step logged with a signature of ours.
        ledgers_changed: a ledger channel opened or closed (announce our ledgers again).
        advice: rejections queued to each peer in this step.
        peer_time_s: time spent on each peer's payloads in this step.
        accepted: peers' signed states this step logged (``_state_key``).
        payments: payments taken on each channel, to be covered by one voucher.
    """

    records: list[log_pb2.LogRecord] = field(default_factory=list)
    prepared: PreparedBatch | None = None
    folded: int = 0
    outgoing: dict[str, list[wire_pb2.Payload]] = field(default_factory=dict)
    messages: dict[bytes, list[tuple[int, bytes]]] = field(default_factory=dict)
    received: dict[bytes, list[int]] = field(default_factory=dict)
    transactions: list[tuple[ObjectiveId, Transaction]] = field(default_factory=list)
    answers: list[Callable[[], None]] = field(default_factory=list)
    refusals: list[Callable[[], None]] = field(default_factory=list)
    dirty: set[ObjectiveId] = field(default_factory=set)
    touched: set[bytes] = field(default_factory=set)
    changed: set[ObjectiveId] = field(default_factory=set)
    signed: set[bytes] = field(default_factory=set)
    ledgers_changed: bool = False
    advice: dict[str, int] = field(default_factory=dict)
    peer_time_s: dict[str, float] = field(default_factory=dict)
    accepted: set[bytes] = field(default_factory=set)
    payments: dict[bytes, PendingPayments] = field(default_factory=dict)

    def send(self, recipient: str, payload: wire_pb2.Payload) -> None:
        """Send ``payload`` once the step is durable."""
        self.outgoing.setdefault(recipient, []).append(payload)

    def take_dirty(self) -> list[ObjectiveId]:
        """The objectives to crank now, in a stable order; the set starts empty again."""
        dirty, self.dirty = self.dirty, set()
        return sorted(dirty, key=str)
