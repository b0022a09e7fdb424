"""API commands: checked in the loop, logged as Command records, answered once durable.

The async methods are what the JSON-RPC layer calls: each puts a command on the
loop's input and waits for the loop's answer. In the loop a command is checked
against the current state; a refusal is answered at once (and logged for audit),
an accepted command is logged and answered once its record is durable.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, assert_never

import trio

from node.core import (
    Allocation,
    FixedPart,
    SingleAssetExit,
    address_to_destination,
    channel_id,
    to_checksum_address,
)
from node.core.constants import channel_nonce_max, engine_route_attempts_max, uint256_max
from node.core.errors import InvalidValueError, ProtocolError
from node.engine._clock import engine_clock
from node.engine._config import EngineConfig
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import (
    AddWatchtower,
    CloseLedger,
    ClosePayment,
    CreateLedger,
    CreatePayment,
    Input,
    Reply,
    SettleChannel,
)
from node.engine._queries import QueriesMixin
from node.engine._records import (
    close_command_record,
    close_payment_record,
    create_command_record,
    create_payment_record,
    rejected_record,
    settle_record,
)
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import ViewCache
from node.proto import log_pb2
from node.protocols import (
    ChannelSnapshot,
    ObjectiveId,
    ObjectiveKind,
    PolicyLimits,
    new_direct_defund,
    new_direct_fund,
    new_settle,
    new_virtual_defund,
    new_virtual_fund,
    settle_ledger,
)

if TYPE_CHECKING:
    from node.chain import ChainService

logger = logging.getLogger("node.engine")

NATIVE_ASSET = "0x0000000000000000000000000000000000000000"
ObjectiveCommand = CreateLedger | CloseLedger | CreatePayment | ClosePayment | SettleChannel


class CommandsMixin(QueriesMixin):
    """The engine's API side (mixed into ``Engine``, which provides the state)."""

    address: str
    consensus_app: str
    payment_app: str
    config: EngineConfig
    chain: ChainService | None
    limits: PolicyLimits
    state: EngineState
    views: ViewCache
    _inputs_send: trio.MemorySendChannel[Input]
    find_intermediaries: Callable[..., tuple[list[str], list[tuple[bytes, int]]]]
    _log: Callable[[Step, log_pb2.LogRecord], None]
    _ledger_snapshots: Callable[[], list[ChannelSnapshot]]
    _has_chain: Callable[[], bool]
    _check_backlogs: Callable[[Iterable[str]], None]

    # ------------------------------------------------------------------ async API

    async def create_ledger_channel(
        self,
        counterparty: str,
        amount: int,
        *,
        counterparty_amount: int = 0,
        asset: str = NATIVE_ASSET,
        challenge_duration: int | None = None,
        nonce: int | None = None,
    ) -> ObjectiveId:
        """Ask the loop to open a ledger channel with ``counterparty``; returns the
        DirectFund objective's id once the command is in the log (``challenge_duration``:
        the node's default when None).

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
            chosen_nonce = engine_clock().randbelow(channel_nonce_max) if nonce is None else nonce
            duration = self._challenge_duration(challenge_duration)
            fixed = FixedPart([self.address, peer], chosen_nonce, self.consensus_app, duration)
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
        return await self._ask(lambda reply: CreateLedger(fixed, outcome, reply))

    async def close_ledger_channel(self, channel: bytes) -> ObjectiveId:
        """Ask the loop to close a ledger channel; returns the DirectDefund objective's id.

        Raises:
            CommandRefusedError: no such channel, or it is not open.
        """
        return await self._ask(lambda reply: CloseLedger(channel, reply))

    async def create_payment_channel(
        self,
        counterparty: str,
        intermediaries: list[str] | None,
        amount: int,
        *,
        asset: str = NATIVE_ASSET,
        challenge_duration: int | None = None,
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
                intermediaries = await self._route(peer, amount, token)
            path = [to_checksum_address(address, "intermediaries") for address in intermediaries]
            chosen_nonce = engine_clock().randbelow(channel_nonce_max) if nonce is None else nonce
            duration = self._challenge_duration(challenge_duration)
            fixed = FixedPart([self.address, *path, peer], chosen_nonce, self.payment_app, duration)
            allocations = [
                Allocation(address_to_destination(self.address), amount),
                Allocation(address_to_destination(peer), 0),
            ]
            outcome = (SingleAssetExit(token, allocations),)
            objective = new_virtual_fund(fixed, outcome, self.address, self.payment_app)
        except (InvalidValueError, ProtocolError) as error:
            raise CommandRefusedError(Refusal.INVALID, str(error)) from None
        return await self._ask(lambda reply: CreatePayment(objective, reply))

    async def _route(self, payee: str, amount: int, asset: str) -> list[str]:
        """The shortest path to ``payee`` whose announced ledgers hold on chain at least
        the capacity their announcers claim (a ledger that does not is left out, and the
        path looked for again).

        Raises:
            CommandRefusedError: no such path.
        """
        excluded: set[bytes] = set()
        for _ in range(engine_route_attempts_max):
            try:
                path, announced = await self._query(
                    functools.partial(
                        self.find_intermediaries, payee, amount, asset, frozenset(excluded)
                    )
                )
            except CommandRefusedError as error:
                if not excluded:
                    raise
                raise CommandRefusedError(
                    Refusal.CONFLICT,
                    f"no route to {payee} whose ledgers hold what they claim on chain"
                    f" ({len(excluded)} announced ledgers left out): {error.message}",
                ) from None
            if self.chain is None:
                return path
            false = [
                ledger
                for ledger, capacity in announced
                if await self.chain.holdings(asset, ledger) < capacity
            ]
            if not false:
                return path
            logger.warning(
                "left out %d announced ledgers holding less on chain than claimed", len(false)
            )
            excluded.update(false)
        raise CommandRefusedError(
            Refusal.CONFLICT, f"no route to {payee} whose ledgers hold what they claim on chain"
        )

    async def close_payment_channel(self, channel: bytes) -> ObjectiveId:
        """Ask the loop to close a virtual channel we pay on; returns the VirtualDefund's id.

        Raises:
            CommandRefusedError: no such open channel, or we are not its payer.
        """
        return await self._ask(lambda reply: ClosePayment(channel, reply))

    async def settle_payment_channel(
        self, channel: bytes, ledger: bytes | None = None
    ) -> ObjectiveId:
        """Ask the loop to enforce a payment channel on chain (the other parties are gone):
        challenge it and our ledger that funds it, wait out the challenge duration,
        reclaim, pay out. Returns the Settle objective's id once logged; the objective
        goes on by itself.

        Raises:
            CommandRefusedError: no such payment channel, we are not in it, no ledger
                of ours funds it, or this node has no chain.
        """
        return await self._ask(lambda reply: SettleChannel(channel, ledger, reply))

    async def settle_ledger_channel(self, ledger: bytes) -> ObjectiveId:
        """Ask the loop to leave a ledger channel on chain without its counterparty: challenge
        it with its latest supported state, enforce every channel it guarantees, wait out
        the challenges, reclaim, pay out. Returns the Settle objective's id (the one that
        runs already, if any).

        Raises:
            CommandRefusedError: no such ledger channel, nothing supported in it yet, or
                this node has no chain.
        """
        return await self._ask(lambda reply: SettleChannel(ledger, ledger, reply))

    async def add_watchtower(self, tower: str) -> bool:
        """Hand our channels to watchtower ``tower`` from now on (every open one at once,
        then each change); it answers stale challenges while this node is offline.
        Returns False if it was one of our towers already.

        Raises:
            CommandRefusedError: not an address, or this node itself.
        """
        try:
            address = to_checksum_address(tower, "tower")
        except InvalidValueError as error:
            raise CommandRefusedError(Refusal.INVALID, str(error)) from None
        reply: Reply[bool] = Reply()
        await self._inputs_send.send(AddWatchtower(address, reply))
        return await reply.wait()

    def _challenge_duration(self, asked: int | None) -> int:
        """The duration asked for (the node's default if none), within what this node
        accepts of its peers: a channel it proposes must be one it would accept.

        Raises:
            InvalidValueError: outside the bounds.
        """
        seconds = self.config.challenge_duration_s if asked is None else asked
        decision = self.limits.check_challenge_duration(seconds)
        if not decision.approved:
            raise InvalidValueError("challenge_duration", decision.reason)
        return seconds

    async def _ask(self, command: Callable[[Reply[ObjectiveId]], Input]) -> ObjectiveId:
        reply: Reply[ObjectiveId] = Reply()
        await self._inputs_send.send(command(reply))
        return await reply.wait()

    # ------------------------------------------------------------------ in the loop

    def _take_command(self, step: Step, command: ObjectiveCommand) -> None:
        """Log a command's record and answer once durable; a refusal is answered at once."""
        try:
            objective_id, record = self._command_record(command)
            if record is None:  # it runs already: the answer is its id
                command.reply.answer(objective_id)
                return
            self._check_backlogs(self._peers_of(command))
        except CommandRefusedError as error:
            logger.warning("refused an API command: %s", error)
            command.reply.fail(error)
            raw = b"create" if isinstance(command, CreateLedger | CreatePayment) else b""
            if isinstance(command, CloseLedger | ClosePayment | SettleChannel):
                raw = command.channel_id
            self._log(step, rejected_record(log_pb2.REJECTION_SOURCE_API, error.message, raw))
            return
        self._log(step, record)
        step.dirty.add(objective_id)
        reply = command.reply
        step.answers.append(lambda: reply.answer(objective_id))
        step.refusals.append(lambda: reply.fail(_unlogged()))
        logger.info("%s: started by the API", objective_id)

    def _peers_of(self, command: ObjectiveCommand) -> list[str]:
        """The peers a command sends to (a settlement: none, it is on chain)."""
        match command:
            case CreateLedger():
                participants = command.fixed.participants
            case CreatePayment():
                participants = command.objective.fixed.participants
            case CloseLedger() | ClosePayment():
                snapshot = self.views.snapshot(command.channel_id)
                participants = snapshot.fixed.participants if snapshot is not None else ()
            case SettleChannel():
                participants = ()
            case _:
                assert_never(command)
        return [peer for peer in participants if peer != self.address]

    def _command_record(
        self, command: ObjectiveCommand
    ) -> tuple[ObjectiveId, log_pb2.LogRecord | None]:
        match command:
            case CreateLedger():
                return self._create_ledger(command)
            case CloseLedger():
                return self._close_ledger(command)
            case CreatePayment():
                return self._create_payment(command)
            case ClosePayment():
                return self._close_payment(command)
            case SettleChannel():
                return self._settle(command)
            case _:
                assert_never(command)

    def _create_ledger(self, command: CreateLedger) -> tuple[ObjectiveId, log_pb2.LogRecord]:
        try:
            objective = new_direct_fund(
                command.fixed, command.outcome, self.address, self.consensus_app
            )
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.INVALID, str(error)) from None
        self._check_new_channel(channel_id(command.fixed))
        record = create_command_record(objective.id, command.fixed, command.outcome)
        return objective.id, record

    def _create_payment(self, command: CreatePayment) -> tuple[ObjectiveId, log_pb2.LogRecord]:
        objective = command.objective
        self._check_new_channel(objective.channel_id)
        return objective.id, create_payment_record(objective.id, objective.fixed, objective.outcome)

    def _check_new_channel(self, channel: bytes) -> None:
        known = self.views.snapshot(channel) is not None
        if known or any(oid.channel_id == channel for oid in self.state.objectives):
            raise CommandRefusedError(Refusal.CONFLICT, f"channel 0x{channel.hex()} exists")

    def _close_ledger(self, command: CloseLedger) -> tuple[ObjectiveId, log_pb2.LogRecord]:
        channel = command.channel_id
        objective_id = ObjectiveId(ObjectiveKind.DIRECT_DEFUND, channel)
        snapshot = self.views.snapshot(channel)
        if snapshot is None or snapshot.fixed.app_definition != self.consensus_app:
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no ledger channel 0x{channel.hex()}")
        self._check_not_running(objective_id, f"channel 0x{channel.hex()} is closing already")
        funding = self.state.entry(ObjectiveId(ObjectiveKind.DIRECT_FUND, channel))
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
        return objective_id, close_command_record(objective_id, objective.final_state)

    def _close_payment(self, command: ClosePayment) -> tuple[ObjectiveId, log_pb2.LogRecord]:
        channel = command.channel_id
        objective_id = ObjectiveId(ObjectiveKind.VIRTUAL_DEFUND, channel)
        snapshot = self._payment_snapshot(channel)
        self._check_not_running(objective_id, f"{objective_id} runs already")
        try:
            paid = self.state.paid.get(channel, 0)
            objective = new_virtual_defund(snapshot, self.address, paid)
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        return objective_id, close_payment_record(objective_id, objective.final_state)

    def _settle(self, command: SettleChannel) -> tuple[ObjectiveId, log_pb2.LogRecord | None]:
        """A settlement through the ledger that funds the channel (the ledger itself: its
        exit); the one that runs or ran through that ledger if there is one."""
        channel = command.channel_id
        if not self._has_chain():
            raise CommandRefusedError(Refusal.CONFLICT, "this node has no chain to settle on")
        snapshot = self.views.snapshot(channel)
        is_ledger = command.ledger_id == channel  # a ledger's own exit
        if is_ledger and (snapshot is None or snapshot.fixed.app_definition != self.consensus_app):
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no ledger channel 0x{channel.hex()}")
        if not is_ledger:
            snapshot = self._payment_snapshot(channel)
        assert snapshot is not None
        if self.address not in snapshot.fixed.participants:
            raise CommandRefusedError(
                Refusal.INVALID,
                f"this node ({self.address}) is not a participant of 0x{channel.hex()}",
            )
        try:
            if is_ledger:
                objective = settle_ledger(snapshot, self.address)
            else:
                ledgers = self._ledger_snapshots()
                objective = new_settle(snapshot, self.address, ledgers, command.ledger_id)
        except ProtocolError as error:
            raise CommandRefusedError(Refusal.CONFLICT, str(error)) from None
        existing = self.state.entry(objective.id)
        if existing is not None and existing.failure is None:
            return objective.id, None
        return objective.id, settle_record(objective.id, channel, objective.ledger)

    def _payment_snapshot(self, channel: bytes) -> ChannelSnapshot:
        snapshot = self.views.snapshot(channel)
        if snapshot is None or not self.views.is_virtual(snapshot):
            raise CommandRefusedError(Refusal.NOT_FOUND, f"no payment channel 0x{channel.hex()}")
        return snapshot

    def _check_not_running(self, objective_id: ObjectiveId, message: str) -> None:
        existing = self.state.entry(objective_id)
        if existing is not None and existing.failure is None:
            raise CommandRefusedError(Refusal.CONFLICT, message)


def _unlogged() -> CommandRefusedError:
    return CommandRefusedError(
        Refusal.UNAVAILABLE, "the node could not log the command; nothing was started"
    )
