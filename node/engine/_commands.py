"""API commands: checked in the loop, logged as Command records, answered once durable."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import trio

from node.core import (
    Allocation,
    FixedPart,
    SingleAssetExit,
    address_from_bytes,
    address_to_destination,
    channel_id,
    to_checksum_address,
)
from node.core.constants import channel_nonce_max, uint256_max
from node.core.errors import InvalidValueError, ProtocolError
from node.derive import Deriver
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import (
    CloseLedger,
    ClosePayment,
    CreateLedger,
    CreatePayment,
    Input,
    Reply,
)
from node.engine._records import close_command_record, create_command_record, rejected_record
from node.engine._table import Entry
from node.engine._views import JsonObject, ledger_channel_info
from node.proto import derive_pb2, log_pb2
from node.protocols import (
    ChannelSnapshot,
    ObjectiveId,
    ObjectiveKind,
    new_direct_defund,
    new_direct_fund,
)

logger = logging.getLogger("node.engine")


class CommandsMixin:
    """The engine's API side (mixed into ``Engine``, which provides the state)."""

    address: str
    deriver: Deriver
    objectives: dict[ObjectiveId, Entry]
    _inputs_send: trio.MemorySendChannel[Input]
    _dirty: set[ObjectiveId]
    consensus_app: str
    snapshot: Callable[[bytes], ChannelSnapshot | None]
    _create_payment: Callable[[CreatePayment], log_pb2.LogRecord]
    _close_payment: Callable[[ClosePayment], log_pb2.LogRecord]

    # ------------------------------------------------------------------ async API

    async def create_ledger_channel(
        self,
        counterparty: str,
        amount: int,
        *,
        counterparty_amount: int = 0,
        asset: str = "0x0000000000000000000000000000000000000000",
        challenge_duration: int,
        nonce: int | None = None,
    ) -> ObjectiveId:
        """Ask the loop to open a ledger channel with ``counterparty``; returns the
        DirectFund objective's id once the command is in the log.

        Raises:
            CommandRefusedError: the parameters break a rule; nothing was started.
        """
        try:
            peer = to_checksum_address(counterparty, "counterparty")
            token = to_checksum_address(asset, "asset")
            if peer == self.address:
                raise InvalidValueError("counterparty", "is this node itself")
            if amount + counterparty_amount <= 0:
                raise InvalidValueError("amount", "the channel would hold nothing")
            if amount + counterparty_amount > uint256_max:
                raise InvalidValueError("amount", "the channel's total exceeds uint256")
            chosen_nonce = nonce if nonce is not None else secrets.randbelow(channel_nonce_max)
            fixed = FixedPart(
                [self.address, peer], chosen_nonce, self.consensus_app, challenge_duration
            )
            outcome = (
                SingleAssetExit(
                    token,
                    [
                        Allocation(address_to_destination(self.address), amount),
                        Allocation(address_to_destination(peer), counterparty_amount),
                    ],
                ),
            )
        except InvalidValueError as error:
            raise CommandRefusedError(Refusal.INVALID, str(error)) from None
        reply = Reply()
        await self._inputs_send.send(CreateLedger(fixed, outcome, reply))
        return await reply.wait()

    async def close_ledger_channel(self, channel: bytes) -> ObjectiveId:
        """Ask the loop to close a ledger channel; returns the DirectDefund objective's id.

        Raises:
            CommandRefusedError: no such channel, or it is not open.
        """
        reply = Reply()
        await self._inputs_send.send(CloseLedger(channel, reply))
        return await reply.wait()

    # ------------------------------------------------------------------ in the loop

    def _command(
        self, command: CreateLedger | CloseLedger | CreatePayment | ClosePayment
    ) -> log_pb2.LogRecord:
        """The record of a command; a refusal is answered at once and logged for audit."""
        try:
            if isinstance(command, CreatePayment):
                return self._create_payment(command)
            if isinstance(command, ClosePayment):
                return self._close_payment(command)
            if isinstance(command, CreateLedger):
                return self._create(command)
            return self._close(command)
        except CommandRefusedError as error:
            logger.warning("refused an API command: %s", error)
            command.reply.fail(error)
            raw = (
                command.channel_id if isinstance(command, CloseLedger | ClosePayment) else b"create"
            )
            return rejected_record(log_pb2.REJECTION_SOURCE_API, error.message, raw)

    def _create(self, command: CreateLedger) -> log_pb2.LogRecord:
        try:
            objective = new_direct_fund(
                command.fixed, command.outcome, self.address, self.consensus_app
            )
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.INVALID, str(error)) from None
        channel = channel_id(command.fixed)
        if self.deriver.channel(channel) is not None or any(
            oid.channel_id == channel for oid in self.objectives
        ):
            raise CommandRefusedError(Refusal.CONFLICT, f"channel 0x{channel.hex()} exists")
        self.objectives[objective.id] = Entry(objective)
        self._dirty.add(objective.id)
        command.reply.objective_id = objective.id
        logger.info("%s: opening with %s", objective.id, command.fixed.participants[1])
        return create_command_record(objective.id, command.fixed, command.outcome)

    def _close(self, command: CloseLedger) -> log_pb2.LogRecord:
        channel = command.channel_id
        objective_id = ObjectiveId(ObjectiveKind.DIRECT_DEFUND, channel)
        snapshot = self.snapshot(channel)
        if snapshot is None or snapshot.fixed.app_definition != self.consensus_app:
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no ledger channel 0x{channel.hex()}")
        existing = self.objectives.get(objective_id)
        if existing is not None and existing.failure is None:
            raise CommandRefusedError(
                Refusal.CONFLICT, f"channel 0x{channel.hex()} is closing already ({objective_id})"
            )
        funding = self.objectives.get(ObjectiveId(ObjectiveKind.DIRECT_FUND, channel))
        supported = snapshot.supported
        if (
            (funding is not None and funding.running)
            or supported is None
            or (supported.state.turn_num < 1)
        ):
            raise CommandRefusedError(Refusal.CONFLICT, f"channel 0x{channel.hex()} is not open")
        try:
            objective = new_direct_defund(snapshot, self.address)
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        self.objectives[objective_id] = Entry(objective)
        self._dirty.add(objective_id)
        command.reply.objective_id = objective_id
        logger.info("%s: closing", objective_id)
        return close_command_record(objective_id)

    # ------------------------------------------------------------------ queries

    def ledger_channel(self, channel: bytes) -> JsonObject:
        """One ledger channel as the module derives it.

        Raises:
            CommandRefusedError: no such ledger channel.
        """
        view = self.deriver.channel(channel)
        if view is None or not self._is_ledger(view):
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no ledger channel 0x{channel.hex()}")
        return ledger_channel_info(view, self.address)

    def ledger_channels(self) -> list[JsonObject]:
        """Every ledger channel the module knows, in channel id order."""
        return [
            ledger_channel_info(view, self.address)
            for view in self.deriver.channels()
            if self._is_ledger(view)
        ]

    def _is_ledger(self, view: derive_pb2.ChannelView) -> bool:
        app = view.fixed.app_definition
        return len(app) == 20 and address_from_bytes(app) == self.consensus_app
