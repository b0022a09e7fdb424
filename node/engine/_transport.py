"""What the engine needs of a message transport, and an in-process one.

The engine sends payloads to a peer by address and reads batches of envelopes
from ``deliveries``. Before a batch is delivered (and acknowledged) the
transport appends, in the same log write, the records the engine derives from
it (``InboundRecords``): a message a peer saw acknowledged is never lost to a
crash. ``node.p2p.P2PNode`` is the network transport; ``MemoryNetwork`` joins
engines of one process (tests, benchmarks) with the same contract.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio

from node.core import address_to_bytes, to_checksum_address
from node.core.constants import engine_inputs_max, p2p_delivery_batches_max
from node.core.errors import InvalidValueError
from node.proto import log_pb2, wire_pb2

if TYPE_CHECKING:
    from trio_typing import TaskStatus

InboundRecords = Callable[[bytes, Sequence[wire_pb2.Envelope]], Sequence[log_pb2.LogRecord]]


class DeliveryLike(Protocol):
    """Envelopes from one peer, each delivered once (``node.p2p.Delivery``)."""

    @property
    def sender(self) -> str: ...

    @property
    def envelopes(self) -> Sequence[wire_pb2.Envelope]: ...


class Transport(Protocol):
    """Sends payloads to peers and hands over what they sent."""

    @property
    def deliveries(self) -> trio.abc.ReceiveChannel[DeliveryLike]: ...

    async def send(self, recipient: str | bytes, payloads: Sequence[wire_pb2.Payload]) -> int: ...


class LogAppender(Protocol):
    """The part of ``node.log.EventLog`` the in-process transport writes to."""

    def append_batch(self, records: Sequence[log_pb2.LogRecord]) -> object: ...


@dataclass(frozen=True)
class MemoryDelivery:
    """A batch of envelopes from one peer."""

    sender: str
    envelopes: tuple[wire_pb2.Envelope, ...]


class MemoryNetwork:
    """Endpoints in one process, each an address with an inbox.

    Messages to an address with no running endpoint wait in its inbox, so an
    engine stopped and started again (a restart in a test) gets them.
    """

    def __init__(self) -> None:
        self._inboxes: dict[
            str,
            tuple[
                trio.MemorySendChannel[tuple[str, wire_pb2.Envelope]],
                trio.MemoryReceiveChannel[tuple[str, wire_pb2.Envelope]],
            ],
        ]
        self._inboxes = {}
        self._ids = itertools.count(1)
        self.dropped: set[tuple[str, str]] = set()  # (sender, recipient) links cut by a test

    def inbox(
        self, address: str
    ) -> tuple[
        trio.MemorySendChannel[tuple[str, wire_pb2.Envelope]],
        trio.MemoryReceiveChannel[tuple[str, wire_pb2.Envelope]],
    ]:
        """The inbox of ``address``, created on first use."""
        key = to_checksum_address(address, "address")
        if key not in self._inboxes:
            self._inboxes[key] = trio.open_memory_channel[tuple[str, wire_pb2.Envelope]](
                engine_inputs_max
            )
        return self._inboxes[key]

    def endpoint(
        self, address: str, log: LogAppender, inbound_records: InboundRecords
    ) -> MemoryTransport:
        """A transport for ``address`` that logs through ``log``; run it in a nursery."""
        return MemoryTransport(self, to_checksum_address(address, "address"), log, inbound_records)

    def next_id(self) -> int:
        return next(self._ids)


class MemoryTransport:
    """One engine's end of a ``MemoryNetwork``."""

    def __init__(
        self,
        network: MemoryNetwork,
        address: str,
        log: LogAppender,
        inbound_records: InboundRecords,
    ) -> None:
        self._network = network
        self.address = address
        self._log = log
        self._inbound_records = inbound_records
        send_channel, receive_channel = trio.open_memory_channel[DeliveryLike](
            p2p_delivery_batches_max
        )
        self._deliveries_send = send_channel
        self._deliveries = receive_channel
        self.sent = 0

    @property
    def deliveries(self) -> trio.MemoryReceiveChannel[DeliveryLike]:
        return self._deliveries

    async def send(self, recipient: str | bytes, payloads: Sequence[wire_pb2.Payload]) -> int:
        """Queue an envelope in the recipient's inbox; returns its id."""
        target = to_checksum_address(recipient, "recipient")
        if target == self.address:
            raise InvalidValueError("recipient", "a node does not send messages to itself")
        if not payloads:
            raise InvalidValueError("payloads", "a message carries at least one payload")
        envelope = wire_pb2.Envelope(
            id=self._network.next_id(),
            sender=address_to_bytes(self.address),
            recipient=address_to_bytes(target),
            payloads=payloads,
        )
        self.sent += 1
        if (self.address, target) in self._network.dropped:
            return envelope.id
        send_channel, _ = self._network.inbox(target)
        await send_channel.send((self.address, envelope))
        return envelope.id

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Take envelopes from the inbox: log the engine's records for them, then deliver."""
        _, inbox = self._network.inbox(self.address)
        task_status.started()
        while True:
            first = await inbox.receive()
            batch = [first]
            while len(batch) < p2p_delivery_batches_max:
                try:
                    batch.append(inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            for sender, envelopes in _by_sender(batch):
                records = list(self._inbound_records(address_to_bytes(sender), envelopes))
                received = log_pb2.LogRecord(
                    received_messages=log_pb2.ReceivedMessages(
                        peer=address_to_bytes(sender),
                        message_ids=[envelope.id for envelope in envelopes],
                    )
                )
                self._log.append_batch([*records, received])
                await self._deliveries_send.send(MemoryDelivery(sender, tuple(envelopes)))


def _by_sender(
    batch: Sequence[tuple[str, wire_pb2.Envelope]],
) -> list[tuple[str, list[wire_pb2.Envelope]]]:
    """Consecutive envelopes grouped by sender, order kept."""
    groups: list[tuple[str, list[wire_pb2.Envelope]]] = []
    for sender, envelope in batch:
        if groups and groups[-1][0] == sender:
            groups[-1][1].append(envelope)
        else:
            groups.append((sender, [envelope]))
    return groups
