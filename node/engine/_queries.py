"""Reads of the engine's state for the API, answered by the loop between steps.

A step folds its records into the state before they are durable; a read made
meanwhile could see what a failed write then takes back. So every read is a
``Query`` input: the loop runs it at the start of a step, when all it sees is
in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeVar, cast

import trio

from node.core import address_from_bytes
from node.derive import Deriver
from node.engine._config import EngineConfig
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import Input, Query, Reply
from node.engine._state import EngineState
from node.engine._views import (
    JsonObject,
    ViewCache,
    ledger_channel_info,
    payment_channel_info,
)
from node.log import EventLog, kind_name, summarise
from node.proto import derive_pb2
from node.protocols import (
    ChannelSnapshot,
    LedgerChannel,
    ObjectiveId,
    ObjectiveView,
    Settle,
    settlement_amounts,
)

logger = logging.getLogger("node.engine")

Read = TypeVar("Read")


@dataclass
class PaymentTotals:
    """What the node's payment channels moved, summed over them."""

    channels: int = 0
    vouchers: int = 0
    paid: int = 0
    received: int = 0


class QueriesMixin:
    """The engine's read side (mixed into ``Engine``, which provides the state)."""

    address: str
    consensus_app: str
    payment_app: str
    config: EngineConfig
    state: EngineState
    views: ViewCache
    deriver: Deriver
    log: EventLog
    _nursery: trio.Nursery | None
    _inputs_send: trio.MemorySendChannel[Input]
    _objective_view: Callable[[Any], ObjectiveView]
    ledger_runtime: Callable[[bytes], LedgerChannel | None]

    async def _query(self, read: Callable[[], Read]) -> Read:
        """``read()`` run by the loop between steps (directly while it does not run)."""
        if self._nursery is None:
            return read()
        reply: Reply[object] = Reply()
        await self._inputs_send.send(Query(read, reply))
        return cast(Read, await reply.wait())

    def _answer_queries(self, queries: list[Query]) -> None:
        for query in queries:
            try:
                query.reply.answer(query.read())
            except CommandRefusedError as error:
                query.reply.fail(error)
            except Exception as error:
                # Our bug: the caller hears of it, the loop goes on.
                logger.exception("a read of the engine state failed")
                query.reply.fail(CommandRefusedError(Refusal.INVALID, f"internal error: {error}"))

    # ------------------------------------------------------------------ channels

    def ledger_channel(self, channel: bytes) -> Awaitable[JsonObject]:
        """One ledger channel as the module derives it.

        Raises:
            CommandRefusedError: no such ledger channel.
        """

        def read() -> JsonObject:
            view = self.deriver.channel(channel)
            if view is None or not self._is_ledger(view):
                raise CommandRefusedError(Refusal.NOT_FOUND, f"no ledger channel 0x{channel.hex()}")
            return ledger_channel_info(view, self.address)

        return self._query(read)

    def ledger_channels(self) -> Awaitable[list[JsonObject]]:
        """Every ledger channel the module knows, in channel id order."""
        return self._query(
            lambda: [
                ledger_channel_info(view, self.address)
                for view in self.deriver.channels()
                if self._is_ledger(view)
            ]
        )

    def payment_channel(self, channel: bytes) -> Awaitable[JsonObject]:
        """One virtual channel as the module derives it.

        Raises:
            CommandRefusedError: no such virtual channel.
        """

        def read() -> JsonObject:
            view = self.deriver.channel(channel)
            if view is None or not self._is_virtual_view(view):
                raise CommandRefusedError(
                    Refusal.NOT_FOUND, f"no payment channel 0x{channel.hex()}"
                )
            return payment_channel_info(view, self.address)

        return self._query(read)

    def payment_channels_by_ledger(self, ledger: bytes) -> Awaitable[list[JsonObject]]:
        """The virtual channels whose path crosses ledger channel ``ledger``'s two parties.

        Raises:
            CommandRefusedError: no such ledger channel.
        """

        def read() -> list[JsonObject]:
            view = self.deriver.channel(ledger)
            if view is None or self._is_virtual_view(view):
                raise CommandRefusedError(Refusal.NOT_FOUND, f"no ledger channel 0x{ledger.hex()}")
            pair = {bytes(p) for p in view.fixed.participants}
            found = []
            for virtual in self.deriver.channels():
                if not self._is_virtual_view(virtual):
                    continue
                path = [bytes(p) for p in virtual.fixed.participants]
                if any({left, right} == pair for left, right in pairwise(path)):
                    found.append(payment_channel_info(virtual, self.address))
            return found

        return self._query(read)

    def channels_overview(self) -> Awaitable[dict[str, list[JsonObject]]]:
        """Every ledger and every payment channel, read in one step (the dashboard's)."""

        def read() -> dict[str, list[JsonObject]]:
            ledgers, payments = [], []
            for view in self.deriver.channels():
                if self._is_ledger(view):
                    ledgers.append(ledger_channel_info(view, self.address))
                elif self._is_virtual_view(view):
                    payments.append(payment_channel_info(view, self.address))
            return {"ledger_channels": ledgers, "payment_channels": payments}

        return self._query(read)

    def payment_totals(self) -> Awaitable[PaymentTotals]:
        """What every payment channel moved so far: vouchers, paid, received."""

        def read() -> PaymentTotals:
            totals = PaymentTotals()
            for view in self.deriver.channels():
                if self._is_virtual_view(view):
                    totals.channels += 1
                    totals.vouchers += view.vouchers
                    totals.paid += int.from_bytes(view.paid, "big")
                    totals.received += int.from_bytes(view.received, "big")
            return totals

        return self._query(read)

    def running_objectives(self) -> Awaitable[list[JsonObject]]:
        """The objectives that wait for something, in the order they started."""
        return self._query(
            lambda: [self.objective_info(oid) for oid, _ in self.state.running_entries()]
        )

    def log_tail(self, records_max: int) -> Awaitable[list[JsonObject]]:
        """The last ``records_max`` records of the log, newest first, summarised."""
        assert records_max > 0

        def read() -> list[JsonObject]:
            last = self.log.last_seq
            records = self.log.read(max(1, last - records_max + 1), last)
            tail: list[JsonObject] = [
                {
                    "seq": record.seq,
                    "kind": kind_name(record.kind),
                    "time_ms": record.time_ms,
                    "summary": summarise(record),
                }
                for record in records
            ]
            return tail[::-1]

        return self._query(read)

    def channel_snapshot(self, channel: bytes) -> Awaitable[ChannelSnapshot | None]:
        """What the module says of ``channel`` (None: it knows no such channel)."""
        return self._query(lambda: self.views.snapshot(channel))

    def ledger(self, ledger_id: bytes) -> Awaitable[LedgerChannel | None]:
        """Our run-time view of an open ledger (None: no such open ledger)."""
        return self._query(lambda: self.ledger_runtime(ledger_id))

    def _is_ledger(self, view: derive_pb2.ChannelView) -> bool:
        app = view.fixed.app_definition
        return len(app) == 20 and address_from_bytes(app) == self.consensus_app

    def _is_virtual_view(self, view: derive_pb2.ChannelView) -> bool:
        app = view.fixed.app_definition
        return bool(self.payment_app) and address_from_bytes(app) == self.payment_app

    # ------------------------------------------------------------------ objectives

    def objective(self, objective_id: ObjectiveId) -> Awaitable[JsonObject]:
        """An objective as JSON: kind, channel, status, pause point, failure.

        Raises:
            CommandRefusedError: NOT_FOUND, no such objective.
        """
        return self._query(lambda: self.objective_info(objective_id))

    def objective_info(self, objective_id: ObjectiveId) -> JsonObject:
        """An objective as JSON, read now (in the loop, or while it does not run).

        Raises:
            CommandRefusedError: NOT_FOUND, no such objective.
        """
        entry = self.state.entry(objective_id)
        if entry is None:
            raise CommandRefusedError(Refusal.OBJECTIVE_NOT_FOUND, f"no objective {objective_id}")
        waiting = entry.waiting_for.value if entry.waiting_for is not None else None
        status = "FAILED" if entry.failure else "DONE" if entry.done else "RUNNING"
        info: JsonObject = {
            "id": str(objective_id),
            "kind": objective_id.kind.value,
            "channel_id": "0x" + objective_id.channel_id.hex(),
            "status": status,
            "waiting_for": waiting,
            "failure": entry.failure,
        }
        if isinstance(entry.objective, Settle):
            info["settlement"] = self._settlement(entry.objective)
        return info

    def _settlement(self, objective: Settle) -> JsonObject:
        """A settlement's figures: when it finalizes, what it pays."""
        try:
            view = self._objective_view(objective)
        except Exception as error:  # a view that cannot be built: say so, do not fail
            return {"ledger_id": "0x" + objective.ledger_id.hex(), "problem": str(error)}
        paid, payout = settlement_amounts(objective, view)
        channels = [view.channel, *view.guaranteed.values()]
        return {
            "ledger_id": "0x" + objective.ledger_id.hex(),
            "finalizes_at": max((c.finalizes_at for c in channels), default=0),
            "chain_time": view.chain_time_s,
            "paid": None if paid is None else str(paid),
            "payout": None if payout is None else str(payout),
            "submitted": sorted(
                f"{kind.value}:0x{channel.hex()}" for kind, channel in objective.submitted
            ),
        }

    def watchtower_info(self) -> Awaitable[JsonObject]:
        """Both watchtower roles: the towers we hand our channels to, and, serving as
        one, how many clients and channels we watch and the channels challenged now."""

        def read() -> JsonObject:
            challenged: list[object] = [
                {
                    "channel_id": "0x" + channel.hex(),
                    "clients": [client for client, _ in watched.requests],
                    "challenge_turn_num": watched.challenge_turn,
                    "finalizes_at": watched.finalizes_at,
                }
                for channel, watched in sorted(self.state.watched.items())
                if watched.challenge_turn is not None
            ]
            return {
                "towers": list(self.state.towers),
                "serving": self.config.watchtower,
                "clients": len(self.state.watch_counts),
                "channels_watched": len(self.state.watched),
                "challenged": challenged,
            }

        return self._query(read)

    def watched_channel(self, channel: bytes) -> Awaitable[JsonObject]:
        """As a watchtower: what the clients handed over of ``channel``, what the chain
        says of it.

        Raises:
            CommandRefusedError: this node watches no such channel.
        """

        def read() -> JsonObject:
            watched = self.state.watched.get(channel)
            if watched is None:
                raise CommandRefusedError(
                    Refusal.NOT_FOUND, f"this node watches no channel 0x{channel.hex()}"
                )
            clients: list[object] = [
                {
                    "client": client,
                    "supported_turn_num": request.supported.state.turn_num,
                    "counter_turn_num": (
                        request.counter.candidate.state.turn_num if request.counter else None
                    ),
                }
                for client, request in watched.requests
            ]
            return {
                "channel_id": "0x" + channel.hex(),
                "clients": clients,
                "challenge_turn_num": watched.challenge_turn,
                "finalizes_at": watched.finalizes_at,
                "concluded": watched.concluded,
            }

        return self._query(read)

    def objectives_running(self) -> Awaitable[int]:
        """How many objectives run."""
        return self._query(lambda: len(self.state.running))
