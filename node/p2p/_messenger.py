"""Reliable channel messaging over /scnode/msg/1.0.0, backed by the event log.

Each peer has a session with two tasks: a log task that writes queued
envelopes to the log as SentMessage records (one append per drained batch)
and a send task that keeps one outbound stream open and writes frames of
logged, unacknowledged envelopes plus the ids it owes the peer as acks. The
peer's frames arrive on the stream it opened to us; they are validated,
de-duplicated, logged as ReceivedMessages (one append per batch of frames),
delivered, and only then acknowledged. So a message reaches the application
once, and an ack means the receiver's log holds it, across crashes of either
side: the outbox and the seen ids are rebuilt from the log on start.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

import trio
from libp2p.abc import IHost, INetStream
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID

from node.core.constants import (
    frame_size_bytes_max,
    inbound_records_per_payload_max,
    log_batch_records_max,
    message_payloads_max,
    message_size_bytes_max,
    p2p_delivery_batches_max,
    p2p_frame_send_bytes_max,
    p2p_outbox_messages_max,
    p2p_peers_max,
    p2p_read_chunk_bytes,
    p2p_redial_backoff_ms_max,
    p2p_redial_backoff_ms_min,
    p2p_resend_timeout_ms,
)
from node.core.errors import InvalidValueError, PeerProtocolError
from node.p2p._framing import (
    FrameDecoder,
    ack_field_bytes,
    check_envelope,
    encode_frame,
    parse_frame,
    sent_message_payload,
)
from node.p2p._host import MESSAGE_PROTOCOL, allow_redial, strip_peer_suffix
from node.p2p._identity import address_bytes_from_peer_id, checksum_address, parse_address
from node.p2p._state import MessagingState, Outbox, SeenIds, rebuild_state
from node.proto import log_pb2, wire_pb2

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.p2p.messaging")

# What a broken connection or stream raises in py-libp2p and trio.
NETWORK_ERRORS: tuple[type[Exception], ...] = (
    BaseLibp2pError,
    OSError,
    EOFError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    trio.TooSlowError,
)
_DIAL_TIMEOUT_S = 10.0
_FRAME_OVERHEAD_BYTES = 16
_ACKS_PER_FRAME_MAX = 100_000
_INLINE_APPEND_RECORDS_MAX = 32


class RecordLog(Protocol):
    """The part of the event log that messaging uses (node.log.EventLog)."""

    def append_batch(self, records: Sequence[log_pb2.LogRecord]) -> object:
        """Append records durably (one fsync)."""
        ...

    def append_payloads(self, payloads: Sequence[bytes], *, time_ms: int) -> object:
        """Append pre-encoded single-payload records durably (one fsync)."""
        ...

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[log_pb2.LogRecord]:
        """Records in sequence order."""
        ...


@dataclass(frozen=True)
class PeerContact:
    """How to reach a peer: its peer id and dialable multiaddrs."""

    peer_id: str
    multiaddrs: tuple[str, ...]


class ContactResolver(Protocol):
    """Finds a peer's contact from its address (peer store, gossip directory)."""

    def contact(self, address: bytes) -> PeerContact | None:
        """The contact of a 20-byte address, if known."""
        ...


@dataclass(frozen=True)
class Delivery:
    """Envelopes from one peer, each delivered once, in the order received."""

    sender: str  # EIP-55 address, proven by the connection
    envelopes: tuple[wire_pb2.Envelope, ...]


# Extra records to append atomically with the ReceivedMessages record of a batch,
# for an application that keeps its own state in the log.
InboundRecords = Callable[[bytes, Sequence[wire_pb2.Envelope]], Sequence[log_pb2.LogRecord]]
AckListener = Callable[[bytes, Sequence[int]], None]


@dataclass(frozen=True)
class MessengerOptions:
    """Tunables; the defaults come from node/core/constants.py."""

    resend_timeout_ms: int = p2p_resend_timeout_ms
    frame_bytes_max: int = frame_size_bytes_max
    frame_send_bytes_max: int = p2p_frame_send_bytes_max
    outbox_messages_max: int = p2p_outbox_messages_max
    delivery_batches_max: int = p2p_delivery_batches_max
    redial_backoff_ms_min: int = p2p_redial_backoff_ms_min
    redial_backoff_ms_max: int = p2p_redial_backoff_ms_max

    def __post_init__(self) -> None:
        # Receivers accept ids up to p2p_outbox_messages_max beyond the first
        # missing one: a larger outbox here would get our messages refused.
        if not 0 < self.outbox_messages_max <= p2p_outbox_messages_max:
            raise InvalidValueError(
                "outbox_messages_max", f"must lie in 1..{p2p_outbox_messages_max}"
            )
        if not 0 < self.redial_backoff_ms_min <= self.redial_backoff_ms_max:
            raise InvalidValueError("redial_backoff_ms_min", "must lie in 1..redial_backoff_ms_max")


class _Wakeup:
    """A level-triggered flag a single task waits on."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = trio.Event()


class _Session:
    """Everything the messenger keeps about one peer."""

    def __init__(self, address: bytes, outbox: Outbox, seen: SeenIds) -> None:
        self.address = address
        self.address_text = checksum_address(address)
        self.outbox = outbox
        self.seen = seen
        self.next_id = outbox.next_id
        self.peer_id: ID | None = None
        self.queued: deque[wire_pb2.Envelope] = deque()
        self.unsent: deque[int] = deque()
        self.sent_at: dict[int, float] = {}
        self.pending_acks: list[int] = []
        self.log_wakeup = _Wakeup()
        self.send_wakeup = _Wakeup()
        self.space = _Wakeup()
        self.inbound_lock = trio.Lock()

    @property
    def outstanding(self) -> int:
        return len(self.queued) + len(self.outbox.unacked)

    def has_work(self) -> bool:
        return bool(self.queued or self.outbox.unacked or self.pending_acks)


class Messenger:
    """Sends and receives Envelopes with acks, resends and de-duplication."""

    def __init__(
        self,
        *,
        host: IHost,
        address: bytes,
        log: RecordLog,
        resolver: ContactResolver,
        options: MessengerOptions | None = None,
        inbound_records: InboundRecords | None = None,
        on_acknowledged: AckListener | None = None,
    ) -> None:
        self._host = host
        self._address = parse_address(address)
        self._log = log
        self._resolver = resolver
        self._options = options or MessengerOptions()
        self._inbound_records = inbound_records
        self._on_acknowledged = on_acknowledged
        send_channel, receive_channel = trio.open_memory_channel[Delivery](
            self._options.delivery_batches_max
        )
        self._deliveries_send = send_channel
        self.deliveries: trio.MemoryReceiveChannel[Delivery] = receive_channel
        self._sessions: dict[bytes, _Session] = {}
        self._state = MessagingState()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Rebuild the outboxes and seen ids from the log, then serve until cancelled."""
        self._state = await trio.to_thread.run_sync(lambda: rebuild_state(self._log.read()))
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for address, box in self._state.outboxes.items():
                if box.unacked:
                    self._session(address)
            self._host.set_stream_handler(MESSAGE_PROTOCOL, self._handle_stream)
            task_status.started()
            await trio.sleep_forever()

    async def send(self, recipient: str | bytes, payloads: Sequence[wire_pb2.Payload]) -> int:
        """Queue a message; returns its id. Waits while the peer's outbox is full.

        The message is logged as a SentMessage before it goes on the wire, and
        re-sent until the recipient acknowledges it.

        Raises:
            InvalidValueError: bad recipient, no payloads, or a message too large.
        """
        address = parse_address(recipient)
        if address == self._address:
            raise InvalidValueError("recipient", "a node does not send messages to itself")
        if not payloads:
            raise InvalidValueError("payloads", "a message carries at least one payload")
        if len(payloads) > message_payloads_max:
            raise InvalidValueError(
                "payloads", f"{len(payloads)} exceed message_payloads_max ({message_payloads_max})"
            )
        session = self._session(address)
        while session.outstanding >= self._options.outbox_messages_max:
            await session.space.wait()
        envelope = wire_pb2.Envelope(
            id=session.next_id, sender=self._address, recipient=address, payloads=payloads
        )
        if envelope.ByteSize() > message_size_bytes_max:
            raise InvalidValueError("payloads", f"message exceeds {message_size_bytes_max} bytes")
        session.next_id += 1
        session.queued.append(envelope)
        session.log_wakeup.set()
        return envelope.id

    def next_message_id(self, recipient: str | bytes) -> int:
        """The id the next message to this peer will get (ids count from 1 per peer)."""
        address = parse_address(recipient)
        session = self._sessions.get(address)
        return session.next_id if session is not None else self._state.outbox(address).next_id

    def unacknowledged(self, recipient: str | bytes) -> int:
        """Messages to a peer not yet acknowledged (queued, logged or in flight)."""
        session = self._sessions.get(parse_address(recipient))
        return 0 if session is None else session.outstanding

    def seen_count(self, sender: str | bytes) -> int:
        """How many distinct message ids this node handled from a peer."""
        return len(self._state.seen_ids(parse_address(sender)))

    def _session(self, address: bytes) -> _Session:
        session = self._sessions.get(address)
        if session is None:
            assert self._nursery is not None, "run() starts the messenger first"
            session = _Session(address, self._state.outbox(address), self._state.seen_ids(address))
            self._sessions[address] = session
            self._nursery.start_soon(self._log_loop, session)
            self._nursery.start_soon(self._send_loop, session)
        return session

    async def _durably(self, append: Callable[[], object], count: int) -> None:
        """Run a log append: inline when small, in a worker thread when large.

        A small append costs one fsync (a fraction of a millisecond); a thread
        hop would add more latency than it saves. A large one would stall the
        other peers' tasks, so it leaves the trio thread.
        """
        if count <= _INLINE_APPEND_RECORDS_MAX:
            append()
        else:
            await trio.to_thread.run_sync(append)

    # Outgoing -------------------------------------------------------------------------

    async def _log_loop(self, session: _Session) -> None:
        while True:
            await session.log_wakeup.wait()
            while session.queued:
                count = min(len(session.queued), log_batch_records_max)
                batch = [session.queued.popleft() for _ in range(count)]
                encoded = [envelope.SerializeToString() for envelope in batch]
                payloads = [sent_message_payload(session.address, data) for data in encoded]
                append = partial(self._log.append_payloads, payloads, time_ms=_now_ms())
                await self._durably(append, len(payloads))
                for envelope, data in zip(batch, encoded, strict=True):
                    session.outbox.add_logged(envelope, data)
                    session.unsent.append(envelope.id)
                session.send_wakeup.set()

    async def _send_loop(self, session: _Session) -> None:
        backoff_s = self._options.redial_backoff_ms_min / 1000
        while True:
            while not session.has_work():
                await session.send_wakeup.wait()
            stream = await self._open_stream(session)
            if stream is None:
                await trio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._options.redial_backoff_ms_max / 1000)
                continue
            backoff_s = self._options.redial_backoff_ms_min / 1000
            # A new stream: whatever is outstanding may have died with the old one.
            session.unsent = deque(session.outbox.unacked)
            session.sent_at.clear()
            try:
                await self._pump(session, stream)
            except NETWORK_ERRORS as error:
                logger.info("stream to %s broke (%r); reconnecting", session.address_text, error)
            await _reset_quietly(stream)

    async def _pump(self, session: _Session, stream: INetStream) -> None:
        resend_timeout_s = self._options.resend_timeout_ms / 1000
        while True:
            if not (session.unsent or session.pending_acks):
                with trio.move_on_after(resend_timeout_s / 2):
                    await session.send_wakeup.wait()
                self._requeue_stale(session, resend_timeout_s)
                continue
            await stream.write(self._next_frame(session))

    def _next_frame(self, session: _Session) -> bytes:
        acks = session.pending_acks[:_ACKS_PER_FRAME_MAX]
        del session.pending_acks[: len(acks)]
        room = self._options.frame_bytes_max - _FRAME_OVERHEAD_BYTES - ack_field_bytes(acks)
        # Stay below the send target, but a message larger than it goes alone.
        budget = room - max(0, self._options.frame_bytes_max - self._options.frame_send_bytes_max)
        fields: list[bytes] = []
        now = trio.current_time()
        unacked = session.outbox.unacked
        while session.unsent:
            message_id = session.unsent[0]
            field = unacked.get(message_id)
            if field is None:
                session.unsent.popleft()  # acknowledged meanwhile
                continue
            if len(field) > budget and (fields or len(field) > room):
                break
            session.unsent.popleft()
            fields.append(field)
            budget -= len(field)
            session.sent_at.pop(message_id, None)
            session.sent_at[message_id] = now
        return encode_frame(fields, acks)

    def _requeue_stale(self, session: _Session, resend_timeout_s: float) -> None:
        deadline = trio.current_time() - resend_timeout_s
        stale: list[int] = []
        for message_id, sent_at in session.sent_at.items():
            if sent_at > deadline:
                break
            stale.append(message_id)
        for message_id in stale:
            del session.sent_at[message_id]
        live = [message_id for message_id in stale if message_id in session.outbox.unacked]
        if live:
            logger.info(
                "re-sending %d messages to %s: no ack within %.1f s",
                len(live),
                session.address_text,
                resend_timeout_s,
            )
            session.unsent = deque([*live, *session.unsent])

    async def _open_stream(self, session: _Session) -> INetStream | None:
        peer_id = session.peer_id
        contact = self._resolver.contact(session.address)
        if contact is not None:
            try:
                if address_bytes_from_peer_id(contact.peer_id) != session.address:
                    raise InvalidValueError("peer_id", "bound to another address")
                peer_id = ID.from_base58(contact.peer_id)
                addrs = strip_peer_suffix(contact.multiaddrs)
            except (InvalidValueError, ValueError) as error:
                logger.warning("ignoring contact of %s: %s", session.address_text, error)
            else:
                self._host.get_peerstore().add_addrs(peer_id, addrs, 0)
        if peer_id is None:
            logger.warning("no known peer id or address for %s yet", session.address_text)
            return None
        allow_redial(self._host, peer_id)
        try:
            with trio.fail_after(_DIAL_TIMEOUT_S):
                stream: INetStream = await self._host.new_stream(peer_id, [MESSAGE_PROTOCOL])
        except NETWORK_ERRORS as error:
            logger.info("cannot open a stream to %s: %r", session.address_text, error)
            return None
        session.peer_id = peer_id
        return stream

    # Incoming -------------------------------------------------------------------------

    async def _handle_stream(self, stream: INetStream) -> None:
        peer_id: ID = stream.muxed_conn.peer_id
        try:
            sender = address_bytes_from_peer_id(peer_id)
        except InvalidValueError as error:
            logger.warning("refusing a message stream from %s: %s", peer_id, error)
            await _reset_quietly(stream)
            return
        if sender not in self._sessions and len(self._sessions) >= p2p_peers_max:
            logger.warning(
                "refusing a message stream from %s: %d peers already", peer_id, p2p_peers_max
            )
            await _reset_quietly(stream)
            return
        session = self._session(sender)
        session.peer_id = peer_id
        decoder = FrameDecoder(self._options.frame_bytes_max)
        try:
            while True:
                data = await stream.read(p2p_read_chunk_bytes)
                if not data:
                    break
                bodies = decoder.feed(data)
                if bodies:
                    await self._receive_frames(session, bodies)
        except PeerProtocolError as error:
            logger.warning(
                "rejected input from %s (%s): %s; its stream is reset",
                session.address_text,
                peer_id,
                error,
            )
        except NETWORK_ERRORS as error:
            logger.debug("stream from %s ended: %r", session.address_text, error)
        except Exception:
            # Our bug: a peer's input must never stop the node. Nothing of the batch
            # was acknowledged, so the peer sends it again on its next stream.
            logger.exception("internal error on the stream from %s; reset", session.address_text)
        await _reset_quietly(stream)

    async def _receive_frames(self, session: _Session, bodies: Sequence[bytes]) -> None:
        frames = [parse_frame(body) for body in bodies]
        async with session.inbound_lock:
            fresh, fresh_ids, duplicates, acks = self._sort_frames(session, frames)
            acknowledged = session.outbox.acknowledge(acks)
            for message_id in acknowledged:
                session.sent_at.pop(message_id, None)
            # One receipt write per group, each within the log's batch bound: a group's
            # envelopes, what validating them caused, and their ReceivedMessages.
            groups = receipt_groups(fresh, fresh_ids) or [([], [])]
            for index, (envelopes, ids) in enumerate(groups):
                acked_now = acknowledged if index == 0 else []
                records = self._inbound_batch_records(session, envelopes, ids, acked_now)
                if records:
                    await self._durably(partial(self._log.append_batch, records), len(records))
                if envelopes:
                    session.seen.add_all(ids)
                    delivery = Delivery(session.address_text, tuple(envelopes))
                    await self._deliveries_send.send(delivery)
            if acknowledged:
                session.space.set()
                if self._on_acknowledged is not None:
                    self._on_acknowledged(session.address, acknowledged)
            if duplicates:
                logger.info(
                    "dropped %d already-handled message ids from %s (first %d); re-acking",
                    len(duplicates),
                    session.address_text,
                    duplicates[0],
                )
            if fresh_ids or duplicates:
                session.pending_acks.extend(fresh_ids)
                session.pending_acks.extend(duplicates)
                session.send_wakeup.set()

    def _sort_frames(
        self, session: _Session, frames: Sequence[wire_pb2.Frame]
    ) -> tuple[list[wire_pb2.Envelope], list[int], list[int], list[int]]:
        """Validate every envelope; split them into fresh and duplicate ids."""
        fresh: list[wire_pb2.Envelope] = []
        fresh_ids: list[int] = []
        batch_ids: set[int] = set()
        duplicates: list[int] = []
        acks: list[int] = []
        # An honest sender never has more than p2p_outbox_messages_max messages
        # outstanding, so its ids stay within this window of the first id missing
        # here; beyond it a peer could make the seen-id set grow without bound.
        id_max = session.seen.contiguous_max + p2p_outbox_messages_max
        for frame in frames:
            acks.extend(frame.acks)
            for envelope in frame.messages:
                check_envelope(envelope, sender=session.address, recipient=self._address)
                message_id = envelope.id
                if message_id > id_max:
                    raise PeerProtocolError(
                        f"envelope {message_id}: id beyond the window (up to {id_max})"
                    )
                if message_id in session.seen or message_id in batch_ids:
                    duplicates.append(message_id)
                else:
                    batch_ids.add(message_id)
                    fresh.append(envelope)
                    fresh_ids.append(message_id)
        return fresh, fresh_ids, duplicates, acks

    def _inbound_batch_records(
        self,
        session: _Session,
        fresh: Sequence[wire_pb2.Envelope],
        fresh_ids: Sequence[int],
        acknowledged: Sequence[int],
    ) -> list[log_pb2.LogRecord]:
        now_ms = _now_ms()
        records: list[log_pb2.LogRecord] = []
        if fresh:
            if self._inbound_records is not None:
                records.extend(self._inbound_records(session.address, fresh))
            records.append(
                log_pb2.LogRecord(
                    time_ms=now_ms,
                    received_messages=log_pb2.ReceivedMessages(
                        peer=session.address, message_ids=fresh_ids
                    ),
                )
            )
        if acknowledged:
            records.append(
                log_pb2.LogRecord(
                    time_ms=now_ms,
                    acknowledgement=log_pb2.Acknowledgement(
                        peer=session.address, message_ids=acknowledged
                    ),
                )
            )
        return records


def receipt_groups(
    envelopes: Sequence[wire_pb2.Envelope], ids: Sequence[int]
) -> list[tuple[list[wire_pb2.Envelope], list[int]]]:
    """Consecutive envelopes grouped so that what one group logs fits one log batch."""
    payloads_max = (log_batch_records_max - 2) // inbound_records_per_payload_max
    groups: list[tuple[list[wire_pb2.Envelope], list[int]]] = []
    payloads = payloads_max
    for envelope, message_id in zip(envelopes, ids, strict=True):
        count = len(envelope.payloads)
        assert count <= message_payloads_max <= payloads_max  # checked on arrival
        if payloads + count > payloads_max:
            groups.append(([], []))
            payloads = 0
        groups[-1][0].append(envelope)
        groups[-1][1].append(message_id)
        payloads += count
    return groups


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _reset_quietly(stream: INetStream) -> None:
    """Reset a stream that may already be broken."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except NETWORK_ERRORS as error:
            logger.debug("reset of a broken stream failed: %r", error)
