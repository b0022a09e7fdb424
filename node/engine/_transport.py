"""What the engine needs of a message transport, and an in-process one.

The engine logs each message before it hands it over (``transmit``) and logs what
a peer sent before it acknowledges it (``acknowledge``; ``release`` when it could
not log it). The transport never writes the log and never calls the engine: it
puts what peers send on ``deliveries``. ``node.p2p.P2PNode`` is the network
transport; ``MemoryNetwork`` joins engines of one process (tests, benchmarks)
with the same contract.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio

from node.core import to_checksum_address
from node.core.constants import engine_inputs_max, p2p_delivery_batches_max, p2p_penalty_s_max
from node.core.errors import InvalidValueError
from node.proto import wire_pb2

if TYPE_CHECKING:
    from trio_typing import TaskStatus


class DeliveryLike(Protocol):
    """What one peer sent (``node.p2p.Delivery``)."""

    @property
    def sender(self) -> str: ...

    @property
    def envelopes(self) -> Sequence[wire_pb2.Envelope]: ...

    @property
    def acknowledged(self) -> Sequence[int]: ...


class Transport(Protocol):
    """Carries logged messages to peers and hands over what peers send."""

    @property
    def deliveries(self) -> trio.abc.ReceiveChannel[DeliveryLike]: ...

    def restore(
        self,
        outboxes: Mapping[bytes, Mapping[int, bytes]],
        seen: Mapping[bytes, tuple[int, Iterable[int]]],
    ) -> None: ...

    def transmit(self, recipient: str | bytes, messages: Sequence[tuple[int, bytes]]) -> None: ...

    def acknowledge(self, sender: str | bytes, message_ids: Sequence[int]) -> None: ...

    def release(self, sender: str | bytes, message_ids: Sequence[int]) -> None: ...

    def disconnect(self, peer: str | bytes, backoff_s: float) -> None:
        """Cut ``peer`` off for ``backoff_s`` seconds (0..p2p_penalty_s_max): what it sends
        is refused and nothing goes to it meanwhile; what we owe it (unacknowledged
        messages, acks) stays and goes out afterwards. For a peer over its budget."""
        ...


@dataclass(frozen=True)
class MemoryDelivery:
    """What one peer sent, in process."""

    sender: str
    envelopes: tuple[wire_pb2.Envelope, ...]
    acknowledged: tuple[int, ...] = ()


# What travels between in-process endpoints: (sender, envelope or None, acked ids).
_Packet = tuple[str, wire_pb2.Envelope | None, tuple[int, ...]]
# The bound of an in-process inbox: large (a test may stop an engine for a while).
_INBOX_PACKETS_MAX = 64 * engine_inputs_max
_INJECTED_ID_FIRST = 1 << 40
_RESEND_AFTER_S = 0.5  # an unacknowledged message goes again after this


class MemoryNetwork:
    """Endpoints in one process, each an address with an inbox.

    Packets to an address with no running endpoint wait in its inbox, so an engine
    stopped and started again (a restart in a test) gets them. A test cuts a link
    by adding ``(sender, recipient)`` to ``dropped``: what crosses it is lost.
    """

    def __init__(self) -> None:
        self._inboxes: dict[
            str, tuple[trio.MemorySendChannel[_Packet], trio.MemoryReceiveChannel[_Packet]]
        ] = {}
        self.dropped: set[tuple[str, str]] = set()
        self._injected_ids = itertools.count(_INJECTED_ID_FIRST)

    def inbox(
        self, address: str
    ) -> tuple[trio.MemorySendChannel[_Packet], trio.MemoryReceiveChannel[_Packet]]:
        """The inbox of ``address``, created on first use."""
        key = to_checksum_address(address, "address")
        if key not in self._inboxes:
            self._inboxes[key] = trio.open_memory_channel[_Packet](_INBOX_PACKETS_MAX)
        return self._inboxes[key]

    def endpoint(self, address: str) -> MemoryTransport:
        """A transport for ``address``; run it in a nursery."""
        return MemoryTransport(self, to_checksum_address(address, "address"))

    def inject(
        self, sender: str, recipient: str, payloads: Sequence[wire_pb2.Payload]
    ) -> wire_pb2.Envelope:
        """A message from ``sender`` that no engine of ``sender`` logged (a test playing a
        peer): its id is far above any an engine gives, so it is never taken as a repeat."""
        envelope = wire_pb2.Envelope(
            id=next(self._injected_ids),
            sender=bytes.fromhex(to_checksum_address(sender)[2:]),
            recipient=bytes.fromhex(to_checksum_address(recipient)[2:]),
            payloads=payloads,
        )
        sender_address = to_checksum_address(sender)
        self.post(sender_address, to_checksum_address(recipient), (sender_address, envelope, ()))
        return envelope

    def post(self, sender: str, recipient: str, packet: _Packet) -> None:
        """Put a packet in ``recipient``'s inbox unless the link is cut; a full inbox
        loses it, as a network would (messages are sent again until acknowledged)."""
        if (sender, recipient) in self.dropped:
            return
        with contextlib.suppress(trio.WouldBlock):
            self.inbox(recipient)[0].send_nowait(packet)


class MemoryTransport:
    """One engine's end of a ``MemoryNetwork``: de-duplicates by message id as the
    network transport does, and acknowledges only what its engine logged."""

    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self._network = network
        self.address = address
        send_channel, receive_channel = trio.open_memory_channel[DeliveryLike](
            p2p_delivery_batches_max
        )
        self._deliveries_send = send_channel
        self._deliveries = receive_channel
        self._unacked: dict[str, dict[int, wire_pb2.Envelope]] = {}
        self._posted_at: dict[tuple[str, int], float] = {}
        self._seen: dict[str, set[int]] = {}
        self._in_flight: dict[str, set[int]] = {}
        self._backoff_until: dict[str, float] = {}
        self.sent = 0

    @property
    def deliveries(self) -> trio.MemoryReceiveChannel[DeliveryLike]:
        return self._deliveries

    def restore(
        self,
        outboxes: Mapping[bytes, Mapping[int, bytes]],
        seen: Mapping[bytes, tuple[int, Iterable[int]]],
    ) -> None:
        """Messages unacknowledged before a restart go again; handled ids stay handled."""
        for peer, messages in outboxes.items():
            recipient = to_checksum_address("0x" + peer.hex())
            envelopes = [(i, wire_pb2.Envelope.FromString(m)) for i, m in sorted(messages.items())]
            for message_id, envelope in envelopes:
                self._unacked.setdefault(recipient, {})[message_id] = envelope
                self._network.post(self.address, recipient, (self.address, envelope, ()))
                self._posted_at[(recipient, message_id)] = 0.0
        for peer, (contiguous_max, above) in seen.items():
            ids = self._seen.setdefault(to_checksum_address("0x" + peer.hex()), set())
            ids.update(range(1, contiguous_max + 1))
            ids.update(above)

    def transmit(self, recipient: str | bytes, messages: Sequence[tuple[int, bytes]]) -> None:
        target = _address(recipient)
        for message_id, encoded in messages:
            envelope = wire_pb2.Envelope.FromString(encoded)
            assert envelope.id == message_id
            self._unacked.setdefault(target, {})[message_id] = envelope
            self.sent += 1
            self._post(target, envelope)

    def _post(self, recipient: str, envelope: wire_pb2.Envelope) -> None:
        self._posted_at[(recipient, envelope.id)] = trio.current_time()
        if not self._backed_off(recipient):
            self._network.post(self.address, recipient, (self.address, envelope, ()))

    def acknowledge(self, sender: str | bytes, message_ids: Sequence[int]) -> None:
        peer = _address(sender)
        self._in_flight.setdefault(peer, set()).difference_update(message_ids)
        self._seen.setdefault(peer, set()).update(message_ids)
        if not self._backed_off(peer):
            self._network.post(self.address, peer, (self.address, None, tuple(message_ids)))

    def disconnect(self, peer: str | bytes, backoff_s: float) -> None:
        """As the network transport: for ``backoff_s`` seconds packets from ``peer`` are
        dropped and none go to it; unacknowledged messages go again afterwards."""
        if not 0 <= backoff_s <= p2p_penalty_s_max:
            raise InvalidValueError("backoff_s", f"must lie in 0..{p2p_penalty_s_max}")
        self._backoff_until[_address(peer)] = trio.current_time() + backoff_s

    def _backed_off(self, peer: str) -> bool:
        until = self._backoff_until.get(peer)
        if until is None:
            return False
        if until <= trio.current_time():
            del self._backoff_until[peer]
            return False
        return True

    def release(self, sender: str | bytes, message_ids: Sequence[int]) -> None:
        self._in_flight.setdefault(_address(sender), set()).difference_update(message_ids)

    def unacknowledged(self, recipient: str) -> int:
        return len(self._unacked.get(_address(recipient), {}))

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Take packets from the inbox and hand them to the engine in batches; send again
        what is not acknowledged after a while, as the network transport does."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._resend_loop)
            await self._receive_loop(task_status)

    async def _resend_loop(self) -> None:
        while True:
            await trio.sleep(_RESEND_AFTER_S / 2)
            stale = trio.current_time() - _RESEND_AFTER_S
            for recipient, envelopes in self._unacked.items():
                for message_id, envelope in envelopes.items():
                    if self._posted_at.get((recipient, message_id), stale) <= stale:
                        self._post(recipient, envelope)

    async def _receive_loop(self, task_status: TaskStatus[None]) -> None:
        _, inbox = self._network.inbox(self.address)
        task_status.started()
        while True:
            batch = [await inbox.receive()]
            while len(batch) < p2p_delivery_batches_max:
                try:
                    batch.append(inbox.receive_nowait())
                except trio.WouldBlock:
                    break
            for delivery in self._sorted(batch):
                await self._deliveries_send.send(delivery)

    def _sorted(self, batch: Sequence[_Packet]) -> list[MemoryDelivery]:
        """Consecutive packets of one sender as one delivery: new envelopes and acks."""
        deliveries: list[MemoryDelivery] = []
        for sender, envelope, acked in batch:
            if self._backed_off(sender):
                continue  # cut off: it sends again when the backoff is over
            fresh: tuple[wire_pb2.Envelope, ...] = ()
            if envelope is not None:
                seen = self._seen.setdefault(sender, set())
                in_flight = self._in_flight.setdefault(sender, set())
                if envelope.id in seen:
                    # Handled before: acknowledge again, as the network transport does.
                    self._network.post(self.address, sender, (self.address, None, (envelope.id,)))
                elif envelope.id not in in_flight:
                    in_flight.add(envelope.id)
                    fresh = (envelope,)
            unacked = self._unacked.get(sender, {})
            done = tuple(i for i in acked if unacked.pop(i, None) is not None)
            for message_id in done:
                self._posted_at.pop((sender, message_id), None)
            if not fresh and not done:
                continue
            if deliveries and deliveries[-1].sender == sender:
                last = deliveries[-1]
                deliveries[-1] = MemoryDelivery(
                    sender, last.envelopes + fresh, last.acknowledged + done
                )
            else:
                deliveries.append(MemoryDelivery(sender, fresh, done))
        return deliveries


def _address(value: str | bytes) -> str:
    if isinstance(value, bytes):
        return to_checksum_address("0x" + value.hex())
    return to_checksum_address(value, "address")
