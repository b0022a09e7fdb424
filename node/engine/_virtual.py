"""Virtual (payment) channels in the engine: VirtualFund over the ledgers next to us.

A virtual channel's objective is cranked with a ``VirtualSnapshot``: the
channel as the derivation module sees it, and our run-time view of the ledger
with the participant before us and the one after us on its path. The ledger
changes it asks for go through the ledger side of the engine.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise

import trio

from node.core import (
    Allocation,
    FixedPart,
    SingleAssetExit,
    address_to_destination,
    to_checksum_address,
    uint256_from_bytes,
)
from node.core.constants import channel_nonce_max, uint256_max
from node.core.errors import InvalidValueError, PeerFault, PeerStateError, ProtocolError
from node.derive import Deriver
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import ClosePayment, CreatePayment, Input, Reply
from node.engine._records import (
    accepted_state_record,
    close_payment_record,
    create_payment_record,
    decision_record,
)
from node.engine._table import Entry
from node.engine._views import JsonObject, payment_channel_info
from node.proto import log_pb2
from node.protocols import (
    ChannelSnapshot,
    LedgerChannel,
    ObjectiveId,
    ObjectiveKind,
    PayeeVouchers,
    PaymentChannel,
    ProposeLedgerUpdate,
    SignLedgerProposal,
    StateReceived,
    VirtualDefund,
    VirtualFund,
    VirtualObjective,
    VirtualSnapshot,
    new_virtual_defund,
    new_virtual_fund,
    virtual_defund_from_final,
)

logger = logging.getLogger("node.engine")

NATIVE_ASSET = "0x0000000000000000000000000000000000000000"


class VirtualMixin:
    """The engine's virtual-channel side (mixed into ``Engine``, which provides the state)."""

    address: str
    deriver: Deriver
    consensus_app: str
    payment_app: str
    objectives: dict[ObjectiveId, Entry]
    _dirty: set[ObjectiveId]
    _inputs_send: trio.MemorySendChannel[Input]
    ledger_runtime: Callable[[bytes], LedgerChannel | None]
    _ledger_request: Callable[[ProposeLedgerUpdate | SignLedgerProposal], list[log_pb2.LogRecord]]
    _fail: Callable[[ObjectiveId, str], None]
    snapshot: Callable[[bytes], ChannelSnapshot | None]
    _payees: dict[bytes, PayeeVouchers]
    _open_channels: dict[bytes, PaymentChannel]
    find_intermediaries: Callable[[str, int, str], list[str]]

    # ------------------------------------------------------------------ async API

    async def create_payment_channel(
        self,
        counterparty: str,
        intermediaries: Sequence[str] | None,
        amount: int,
        *,
        asset: str = NATIVE_ASSET,
        challenge_duration: int = 3600,
        nonce: int | None = None,
    ) -> ObjectiveId:
        """Ask the loop to open a virtual channel paying ``counterparty`` up to ``amount``
        through ``intermediaries`` (None: the shortest route through known ledgers; empty:
        funded by our ledger with the counterparty); returns the VirtualFund objective's id
        once logged.

        Raises:
            CommandRefusedError: the parameters break a rule; nothing was started.
        """
        try:
            if not self.payment_app:
                raise InvalidValueError("payment_app", "this node runs no virtual channels")
            peer = to_checksum_address(counterparty, "counterparty")
            token = to_checksum_address(asset, "asset")
            if not 0 < amount <= uint256_max:
                raise InvalidValueError("amount", "must be in (0, 2**256)")
            if intermediaries is None:
                intermediaries = self.find_intermediaries(peer, amount, token)
            path = [to_checksum_address(address, "intermediaries") for address in intermediaries]
            chosen_nonce = nonce if nonce is not None else secrets.randbelow(channel_nonce_max)
            fixed = FixedPart(
                [self.address, *path, peer], chosen_nonce, self.payment_app, challenge_duration
            )
            outcome = (
                SingleAssetExit(
                    token,
                    [
                        Allocation(address_to_destination(self.address), amount),
                        Allocation(address_to_destination(peer), 0),
                    ],
                ),
            )
            objective = new_virtual_fund(fixed, outcome, self.address, self.payment_app)
        except (InvalidValueError, ProtocolError) as error:
            raise CommandRefusedError(Refusal.INVALID, str(error)) from None
        reply = Reply()
        await self._inputs_send.send(CreatePayment(objective, reply))
        return await reply.wait()

    async def close_payment_channel(self, channel: bytes) -> ObjectiveId:
        """Ask the loop to close a virtual channel we pay on; returns the VirtualDefund's id.

        Raises:
            CommandRefusedError: no such open channel, or we are not its payer.
        """
        reply = Reply()
        await self._inputs_send.send(ClosePayment(channel, reply))
        return await reply.wait()

    def payment_channel(self, channel: bytes) -> JsonObject:
        """One virtual channel as the module derives it.

        Raises:
            CommandRefusedError: no such virtual channel.
        """
        view = self.deriver.channel(channel)
        if view is None or not self._is_virtual(view.fixed.app_definition):
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no payment channel 0x{channel.hex()}")
        return payment_channel_info(view, self.address)

    def payment_channels_by_ledger(self, ledger: bytes) -> list[JsonObject]:
        """The virtual channels whose path crosses ledger channel ``ledger``'s two parties
        (funded, being funded or once funded through a ledger between them).

        Raises:
            CommandRefusedError: no such ledger channel.
        """
        view = self.deriver.channel(ledger)
        if view is None or self._is_virtual(view.fixed.app_definition):
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no ledger channel 0x{ledger.hex()}")
        pair = {bytes(p) for p in view.fixed.participants}
        found = []
        for virtual in self.deriver.channels():
            if not self._is_virtual(virtual.fixed.app_definition):
                continue
            path = [bytes(p) for p in virtual.fixed.participants]
            if any({left, right} == pair for left, right in pairwise(path)):
                found.append(payment_channel_info(virtual, self.address))
        return found

    def _is_virtual(self, app: bytes) -> bool:
        return bool(self.payment_app) and app == bytes.fromhex(self.payment_app[2:])

    # ------------------------------------------------------------------ in the loop

    def _create_payment(self, command: CreatePayment) -> log_pb2.LogRecord:
        objective = command.objective
        if objective.id in self.objectives or self.deriver.channel(objective.channel_id):
            raise CommandRefusedError(
                Refusal.CONFLICT, f"channel 0x{objective.channel_id.hex()} exists"
            )
        self.objectives[objective.id] = Entry(objective)
        self._dirty.add(objective.id)
        command.reply.objective_id = objective.id
        logger.info("%s: opening with %s", objective.id, objective.fixed.participants[-1])
        return create_payment_record(objective.id, objective.fixed, objective.outcome)

    def _paid_of(self, channel: bytes) -> int:
        """The largest voucher we sent on ``channel``, as the module folded it."""
        view = self.deriver.channel(channel)
        return uint256_from_bytes(view.paid) if view is not None and view.paid else 0

    def _close_payment(self, command: ClosePayment) -> log_pb2.LogRecord:
        channel = command.channel_id
        objective_id = ObjectiveId(ObjectiveKind.VIRTUAL_DEFUND, channel)
        view = self.deriver.channel(channel)
        if view is None or not self._is_virtual(view.fixed.app_definition):
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no payment channel 0x{channel.hex()}")
        existing = self.objectives.get(objective_id)
        if existing is not None and existing.failure is None:
            raise CommandRefusedError(Refusal.CONFLICT, f"{objective_id} runs already")
        snapshot = self.snapshot(channel)
        assert snapshot is not None
        try:
            objective = new_virtual_defund(snapshot, self.address, self._paid_of(channel))
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        self.objectives[objective_id] = Entry(objective)
        self._dirty.add(objective_id)
        command.reply.objective_id = objective_id
        logger.info("%s: closing", objective_id)
        return close_payment_record(objective_id)

    def _peer_virtual_close(
        self, objective_id: ObjectiveId, event: StateReceived, others: list[ObjectiveId]
    ) -> list[log_pb2.LogRecord]:
        """The payer's final state: join the close once the channel is open and it pays
        the payee at least the largest voucher we accepted."""
        channel = objective_id.channel_id
        snapshot = self.snapshot(channel)
        if snapshot is None:
            raise PeerStateError(PeerFault.UNKNOWN_CHANNEL, f"no channel 0x{channel.hex()}")
        if any(self.objectives[oid].running for oid in others):
            raise PeerStateError(PeerFault.WRONG_TURN, f"channel 0x{channel.hex()} is busy")
        payee = self._payees.get(channel)
        largest = payee.received if payee is not None else 0
        try:
            objective = virtual_defund_from_final(snapshot, self.address, event, largest)
        except PeerStateError:
            raise
        except ProtocolError as error:
            raise PeerStateError(PeerFault.CHANNEL_NOT_OPEN, str(error)) from error
        self._open_channels.pop(channel, None)
        return self._accept_virtual(objective, event)

    def _accept_virtual(
        self, objective: VirtualObjective, event: StateReceived
    ) -> list[log_pb2.LogRecord]:
        """A peer's VirtualFund: join it (the ledgers' funds are the limit)."""
        logger.info("joining %s proposed by %s", objective.id, event.sender)
        self.objectives[objective.id] = Entry(objective)
        self._dirty.add(objective.id)
        return [
            accepted_state_record(event.signed_state),
            decision_record(objective.id, approved=True, reason=""),
        ]

    def _touch_virtual(self) -> None:
        """A ledger changed: the virtual objectives waiting on ledgers look again."""
        self._dirty.update(
            oid
            for oid, entry in self.objectives.items()
            if entry.running and isinstance(entry.objective, VirtualFund | VirtualDefund)
        )

    def _ledger_effect(
        self, objective_id: ObjectiveId, effect: ProposeLedgerUpdate | SignLedgerProposal
    ) -> list[log_pb2.LogRecord]:
        try:
            records = self._ledger_request(effect)
        except CommandRefusedError as error:
            self._fail(objective_id, f"ledger: {error.message}")
            return []
        self._dirty.add(objective_id)
        return records

    def _virtual_snapshot(
        self, objective: VirtualObjective, channel: ChannelSnapshot
    ) -> VirtualSnapshot:
        participants = objective.fixed.participants
        me = objective.my_index
        left = self._ledger_with(participants[me - 1]) if me > 0 else None
        right = self._ledger_with(participants[me + 1]) if me < len(participants) - 1 else None
        return VirtualSnapshot(channel, left, right)

    def _ledger_with(self, peer: str) -> LedgerChannel | None:
        """Our open ledger with ``peer`` (the first by channel id)."""
        return next(iter(self._ledgers_with(peer)), None)

    def _ledgers_with(self, peer: str) -> Iterable[LedgerChannel]:
        pair = {self.address, peer}
        for view in self.deriver.channels():
            participants = {to_checksum_address(p) for p in view.fixed.participants}
            if participants != pair:
                continue
            ledger = self.ledger_runtime(view.channel_id)
            if ledger is not None:
                yield ledger
