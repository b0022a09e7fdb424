"""Reliable channel messaging over /scnode/msg/1.0.0; durability is the owner's.

The messenger never writes the log and never calls into the engine. Its owner
(the engine loop) logs each message it sends and then hands it over with
``transmit``; the messenger keeps one outbound stream per peer and writes frames
of unacknowledged messages and of the ids it owes the peer as acks, re-sending
after a reconnect or a silence. A peer's frames arrive on the stream it opened
to us: the messenger authenticates the sender by the connection, checks each
envelope, drops ids it handled before (re-acknowledging them) and hands the new
ones, with the acknowledgements the peer sent, to ``deliveries``. The owner logs
what it took and calls ``acknowledge`` (the ack goes out only then) or, when it
could not log them, ``release`` (the peer's re-send is taken again). So a
message reaches the owner once, and an ack means the receiver's log holds it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import trio
from libp2p.abc import IHost, INetStream
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID

from node.core.constants import (
    frame_messages_max,
    frame_size_bytes_max,
    p2p_delivery_batches_max,
    p2p_frame_send_bytes_max,
    p2p_frame_stall_ms_max,
    p2p_outbox_messages_max,
    p2p_peer_bytes_per_s_max,
    p2p_peer_messages_per_s_max,
    p2p_peers_max,
    p2p_penalty_s_max,
    p2p_read_chunk_bytes,
    p2p_redial_backoff_ms_max,
    p2p_redial_backoff_ms_min,
    p2p_resend_timeout_ms,
    p2p_session_idle_ms,
    p2p_unfinished_frame_bytes_max,
)
from node.core.errors import InvalidValueError, PeerProtocolError
from node.p2p._framing import (
    FrameDecoder,
    ack_field_bytes,
    check_envelope,
    encode_frame,
    parse_frame,
)
from node.p2p._host import MESSAGE_PROTOCOL, allow_redial, strip_peer_suffix
from node.p2p._identity import address_bytes_from_peer_id, checksum_address, parse_address
from node.p2p._limits import ByteBudget, TokenBucket
from node.p2p._state import Outbox, SeenIds
from node.proto import wire_pb2

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
# While a peer is throttled its stream is not read: a Yamux sender that keeps to our
# receive window (it grows to 16 MiB at most) cannot buffer more than this meanwhile.
# py-libp2p 0.8.1 buffers what a peer sends beyond the window (it only logs it), so a
# peer found above this while it waits broke the window and its stream is reset.
_UNREAD_BYTES_MAX = 16 * 1024 * 1024 + p2p_read_chunk_bytes
_THROTTLE_STEP_S = 0.1
_THROTTLE_LOG_INTERVAL_S = 10.0


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
    """What one peer sent: new envelopes, each delivered once, in the order received,
    and the ids of our messages it acknowledged.

    Attributes:
        sender: the peer's EIP-55 address, proven by the connection.
        envelopes: envelopes never handed over before (the owner answers with
            ``acknowledge`` or ``release``).
        acknowledged: ids of our messages the peer holds now.
    """

    sender: str
    envelopes: tuple[wire_pb2.Envelope, ...]
    acknowledged: tuple[int, ...] = ()


@dataclass(frozen=True)
class MessengerOptions:
    """Tunables; the defaults come from node/core/constants.py."""

    resend_timeout_ms: int = p2p_resend_timeout_ms
    frame_bytes_max: int = frame_size_bytes_max
    frame_send_bytes_max: int = p2p_frame_send_bytes_max
    delivery_batches_max: int = p2p_delivery_batches_max
    redial_backoff_ms_min: int = p2p_redial_backoff_ms_min
    redial_backoff_ms_max: int = p2p_redial_backoff_ms_max
    peer_messages_per_s_max: int = p2p_peer_messages_per_s_max
    peer_bytes_per_s_max: int = p2p_peer_bytes_per_s_max
    unfinished_frame_bytes_max: int = p2p_unfinished_frame_bytes_max
    frame_stall_ms_max: int = p2p_frame_stall_ms_max
    session_idle_ms: int = p2p_session_idle_ms

    def __post_init__(self) -> None:
        if not 0 < self.redial_backoff_ms_min <= self.redial_backoff_ms_max:
            raise InvalidValueError("redial_backoff_ms_min", "must lie in 1..redial_backoff_ms_max")
        for name in (
            "peer_messages_per_s_max",
            "peer_bytes_per_s_max",
            "frame_stall_ms_max",
            "session_idle_ms",
        ):
            if getattr(self, name) <= 0:
                raise InvalidValueError(name, "must be positive")
        if self.unfinished_frame_bytes_max < self.frame_bytes_max:
            raise InvalidValueError("unfinished_frame_bytes_max", "must hold one whole frame")


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
        self.in_flight: set[int] = set()  # handed to the owner, not yet acknowledged
        self.peer_id: ID | None = None
        self.unsent: deque[int] = deque(outbox.unacked)
        self.sent_at: dict[int, float] = {}
        self.pending_acks: list[int] = []
        self.send_wakeup = _Wakeup()
        self.inbound_lock = trio.Lock()
        self.scope = trio.CancelScope()  # the send loop's: cancelled when evicted
        self.stream_scope: trio.CancelScope | None = None  # the outbound stream's
        self.last_active_s = trio.current_time()

    @property
    def outstanding(self) -> int:
        return len(self.outbox.unacked)

    def has_work(self) -> bool:
        return bool(self.outbox.unacked or self.pending_acks)

    def idle(self) -> bool:
        """Nothing to send, acknowledge or take back: the session may go."""
        return not (self.has_work() or self.in_flight)


class _PeerRate:
    """The inbound token buckets of one peer (they outlive its streams)."""

    def __init__(self, options: MessengerOptions, now_s: float) -> None:
        self.messages = TokenBucket(
            rate_per_s=options.peer_messages_per_s_max,
            burst=options.peer_messages_per_s_max,
            now_s=now_s,
        )
        self.bytes = TokenBucket(
            rate_per_s=options.peer_bytes_per_s_max,
            burst=options.peer_bytes_per_s_max,
            now_s=now_s,
        )
        self.logged_s = -_THROTTLE_LOG_INTERVAL_S

    def full(self, now_s: float) -> bool:
        return self.messages.full(now_s) and self.bytes.full(now_s)


class Messenger:
    """Sends and receives Envelopes with acks, resends and de-duplication.

    What one peer can make it hold is bounded: a session (send loop, ids in flight)
    only once the peer sent a valid envelope or the owner sends to it, and dropped
    after ``session_idle_ms`` without work; one inbound stream per peer (a newer one
    replaces it); inbound messages and bytes through per-peer token buckets (a peer
    in debt is not read from); unfinished frames of all peers within one budget.
    """

    def __init__(
        self,
        *,
        host: IHost,
        address: bytes,
        resolver: ContactResolver,
        options: MessengerOptions | None = None,
    ) -> None:
        self._host = host
        self._address = parse_address(address)
        self._resolver = resolver
        self._options = options or MessengerOptions()
        send_channel, receive_channel = trio.open_memory_channel[Delivery](
            self._options.delivery_batches_max
        )
        self._deliveries_send = send_channel
        self.deliveries: trio.MemoryReceiveChannel[Delivery] = receive_channel
        self._sessions: dict[bytes, _Session] = {}
        self._outboxes: dict[bytes, Outbox] = {}
        self._seen: dict[bytes, SeenIds] = {}
        self._inbound: dict[bytes, trio.CancelScope] = {}  # one reading stream per peer
        self._rates: dict[bytes, _PeerRate] = {}
        self._backoff_until: dict[bytes, float] = {}
        self.unfinished = ByteBudget(self._options.unfinished_frame_bytes_max)
        self.throttled = 0  # times a peer in debt was made to wait
        self._nursery: trio.Nursery | None = None

    def restore(
        self,
        outboxes: Mapping[bytes, Mapping[int, bytes]],
        seen: Mapping[bytes, tuple[int, Iterable[int]]],
    ) -> None:
        """Before ``run``: our logged messages not yet acknowledged (peer -> id ->
        Envelope bytes) and the ids handled of each peer ((watermark, ids above))."""
        assert self._nursery is None, "restore before run"
        for peer, messages in outboxes.items():
            box = self._outbox(parse_address(peer))
            for message_id, envelope in sorted(messages.items()):
                box.add_encoded(message_id, envelope)
        for peer, (contiguous_max, above) in seen.items():
            self._seen_ids(parse_address(peer)).restore(contiguous_max, above)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; messages restored are sent as peers become reachable."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for address, box in self._outboxes.items():
                if box.unacked:
                    self._session(address)
            self._host.set_stream_handler(MESSAGE_PROTOCOL, self._handle_stream)
            nursery.start_soon(self._evict_loop)
            task_status.started()
            await trio.sleep_forever()

    def transmit(self, recipient: str | bytes, messages: Sequence[tuple[int, bytes]]) -> None:
        """Send messages the owner has logged: ``(id, Envelope bytes)``, ids counting
        from 1 per peer. They go out until the peer acknowledges them."""
        session = self._session(parse_address(recipient))
        for message_id, envelope in messages:
            session.outbox.add_encoded(message_id, envelope)
            session.unsent.append(message_id)
        session.send_wakeup.set()

    def acknowledge(self, sender: str | bytes, message_ids: Sequence[int]) -> None:
        """The owner has logged these messages of ``sender``: tell the peer."""
        session = self._session(parse_address(sender))
        session.in_flight.difference_update(message_ids)
        session.seen.add_all(message_ids)
        session.pending_acks.extend(message_ids)
        session.send_wakeup.set()

    def release(self, sender: str | bytes, message_ids: Sequence[int]) -> None:
        """The owner could not log these messages of ``sender``: take them again when the
        peer sends them again (it will: they are not acknowledged)."""
        session = self._sessions.get(parse_address(sender))
        if session is not None:
            session.in_flight.difference_update(message_ids)

    def disconnect(self, peer: str | bytes, backoff_s: float) -> None:
        """Stop talking to ``peer`` for ``backoff_s`` seconds: its inbound stream is
        reset and refused, our stream to it closed and not re-opened meanwhile. What we
        owe it (unacknowledged messages, acks) stays and goes out afterwards.

        Raises:
            InvalidValueError: ``backoff_s`` outside 0..p2p_penalty_s_max.
        """
        address = parse_address(peer)
        if not 0 <= backoff_s <= p2p_penalty_s_max:
            raise InvalidValueError("backoff_s", f"must lie in 0..{p2p_penalty_s_max}")
        until = trio.current_time() + backoff_s
        self._backoff_until[address] = max(until, self._backoff_until.get(address, until))
        inbound = self._inbound.get(address)
        if inbound is not None:
            inbound.cancel(reason="peer disconnected by its owner")  # type: ignore[call-arg]
        session = self._sessions.get(address)
        if session is not None and session.stream_scope is not None:
            session.stream_scope.cancel(reason="peer disconnected by its owner")  # type: ignore[call-arg]

    def backoff_remaining(self, peer: str | bytes) -> float:
        """Seconds until a disconnected peer may talk to us again (0: it may)."""
        address = parse_address(peer)
        until = self._backoff_until.get(address)
        if until is None:
            return 0.0
        remaining = until - trio.current_time()
        if remaining <= 0:
            del self._backoff_until[address]
            return 0.0
        return remaining

    def unacknowledged(self, recipient: str | bytes) -> int:
        """Messages to a peer not yet acknowledged."""
        session = self._sessions.get(parse_address(recipient))
        return 0 if session is None else session.outstanding

    def seen_count(self, sender: str | bytes) -> int:
        """How many distinct message ids this node handled from a peer."""
        return len(self._seen_ids(parse_address(sender)))

    @property
    def session_count(self) -> int:
        """Peers with a session now."""
        return len(self._sessions)

    def _outbox(self, address: bytes) -> Outbox:
        box = self._outboxes.get(address)
        if box is None:
            box = self._outboxes[address] = Outbox()
        return box

    def _seen_ids(self, address: bytes) -> SeenIds:
        seen = self._seen.get(address)
        if seen is None:
            seen = self._seen[address] = SeenIds()
        return seen

    def _session(self, address: bytes) -> _Session:
        session = self._sessions.get(address)
        if session is None:
            assert self._nursery is not None, "run() starts the messenger first"
            session = _Session(address, self._outbox(address), self._seen_ids(address))
            self._sessions[address] = session
            self._nursery.start_soon(self._run_session, session)
        session.last_active_s = trio.current_time()
        return session

    async def _run_session(self, session: _Session) -> None:
        with session.scope:
            await self._send_loop(session)

    async def _evict_loop(self) -> None:
        idle_s = self._options.session_idle_ms / 1000
        while True:
            await trio.sleep(idle_s / 4)
            now = trio.current_time()
            for address, session in list(self._sessions.items()):
                if session.last_active_s + idle_s <= now and self._evictable(session):
                    self._evict(address, "idle")

    @staticmethod
    def _evictable(session: _Session) -> bool:
        # An open inbound stream does not keep a session: the next valid envelope on it
        # makes a new one (the ids handled are kept apart, in ``_seen``).
        return session.idle()

    def _evict(self, address: bytes, why: str) -> None:
        session = self._sessions.pop(address)
        session.scope.cancel(reason=f"session evicted ({why})")  # type: ignore[call-arg]
        logger.debug("session of %s evicted (%s)", session.address_text, why)

    def _inbound_session(self, sender: bytes) -> _Session:
        """A session for a peer that sent a valid envelope; an idle one may make room.

        Raises:
            PeerProtocolError: p2p_peers_max peers have sessions with work.
        """
        if sender not in self._sessions and len(self._sessions) >= p2p_peers_max:
            idle = [s for s in self._sessions.values() if self._evictable(s)]
            if not idle:
                raise PeerProtocolError(f"{p2p_peers_max} peers with work already")
            oldest = min(idle, key=lambda session: session.last_active_s)
            self._evict(oldest.address, "room for a new peer")
        return self._session(sender)

    # Outgoing -------------------------------------------------------------------------

    async def _send_loop(self, session: _Session) -> None:
        backoff_s = self._options.redial_backoff_ms_min / 1000
        while True:
            while not session.has_work():
                await session.send_wakeup.wait()
            penalty_s = self.backoff_remaining(session.address)
            if penalty_s > 0:
                await trio.sleep(penalty_s)
                continue
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
                with trio.CancelScope() as session.stream_scope:
                    await self._pump(session, stream)
            except NETWORK_ERRORS as error:
                logger.info("stream to %s broke (%r); reconnecting", session.address_text, error)
            finally:
                session.stream_scope = None
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
            session.last_active_s = trio.current_time()

    def _next_frame(self, session: _Session) -> bytes:
        acks = session.pending_acks[:_ACKS_PER_FRAME_MAX]
        del session.pending_acks[: len(acks)]
        room = self._options.frame_bytes_max - _FRAME_OVERHEAD_BYTES - ack_field_bytes(acks)
        # Stay below the send target, but a message larger than it goes alone.
        budget = room - max(0, self._options.frame_bytes_max - self._options.frame_send_bytes_max)
        fields: list[bytes] = []
        now = trio.current_time()
        unacked = session.outbox.unacked
        while session.unsent and len(fields) < frame_messages_max:
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
        except Exception:  # a dial must never stop the node, whatever py-libp2p raises
            logger.exception("opening a stream to %s failed", session.address_text)
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
        sender_text = checksum_address(sender)
        if self.backoff_remaining(sender) > 0:
            logger.info("refusing a message stream from %s: disconnected for now", sender_text)
            await _reset_quietly(stream)
            return
        previous = self._inbound.get(sender)
        if previous is not None:
            previous.cancel(reason="replaced by a newer stream of the same peer")  # type: ignore[call-arg]
        elif len(self._inbound) >= p2p_peers_max:
            logger.warning(
                "refusing a message stream from %s: %d peers", sender_text, len(self._inbound)
            )
            await _reset_quietly(stream)
            return
        scope = self._inbound[sender] = trio.CancelScope()
        decoder = FrameDecoder(self._options.frame_bytes_max, self.unfinished)
        try:
            with scope:
                await self._read_stream(stream, sender, peer_id, decoder)
        except PeerProtocolError as error:
            logger.warning(
                "rejected input from %s (%s): %s; its stream is reset", sender_text, peer_id, error
            )
        except NETWORK_ERRORS as error:
            logger.debug("stream from %s ended: %r", sender_text, error)
        except Exception:
            # Our bug: a peer's input must never stop the node. Nothing of the batch
            # was acknowledged, so the peer sends it again on its next stream.
            logger.exception("internal error on the stream from %s; reset", sender_text)
        finally:
            decoder.close()
            if self._inbound.get(sender) is scope:
                del self._inbound[sender]
        await _reset_quietly(stream)

    async def _read_stream(
        self, stream: INetStream, sender: bytes, peer_id: ID, decoder: FrameDecoder
    ) -> None:
        """Read frames until the stream ends; throttle a peer in debt.

        Raises:
            PeerProtocolError: bad input, or an unfinished frame that stalled.
        """
        rate = self._rate(sender)
        stall_s = self._options.frame_stall_ms_max / 1000
        # One scope for the stream, its deadline moved per read (cheaper than a scope
        # per read); it bounds only the wait for the rest of an unfinished frame.
        with trio.CancelScope() as stall:
            while True:
                if decoder.buffered_bytes:
                    stall.deadline = trio.current_time() + stall_s
                data = await stream.read(p2p_read_chunk_bytes)
                stall.deadline = math.inf
                if not data:
                    return
                await self._take_chunk(stream, sender, peer_id, decoder, rate, data)
        raise PeerProtocolError(
            f"an unfinished frame ({decoder.buffered_bytes} bytes) made no progress "
            f"for {stall_s:.0f} s"
        )

    async def _take_chunk(
        self,
        stream: INetStream,
        sender: bytes,
        peer_id: ID,
        decoder: FrameDecoder,
        rate: _PeerRate,
        data: bytes,
    ) -> None:
        now = trio.current_time()
        wait_s = rate.bytes.take(len(data), now)
        bodies = decoder.feed(data)
        frames = [parse_frame(body) for body in bodies]
        count = sum(len(frame.messages) for frame in frames)
        if count:
            wait_s = max(wait_s, rate.messages.take(count, now))
        if wait_s > 0:
            await self._throttle(stream, sender, rate, wait_s)
        if frames:
            await self._receive_frames(sender, peer_id, frames)

    async def _throttle(
        self, stream: INetStream, sender: bytes, rate: _PeerRate, wait_s: float
    ) -> None:
        """Read nothing of a peer in debt until it is paid back.

        Raises:
            PeerProtocolError: the peer sent beyond its receive window meanwhile.
        """
        self.throttled += 1
        now = trio.current_time()
        if now - rate.logged_s >= _THROTTLE_LOG_INTERVAL_S:
            rate.logged_s = now
            logger.info(
                "throttling %s: over %d messages/s or %d bytes/s (waits %.3f s)",
                checksum_address(sender),
                self._options.peer_messages_per_s_max,
                self._options.peer_bytes_per_s_max,
                wait_s,
            )
        deadline = now + wait_s
        while (remaining := deadline - trio.current_time()) > 0:
            await trio.sleep(min(remaining, _THROTTLE_STEP_S))
            if _unread_bytes(stream) > _UNREAD_BYTES_MAX:
                raise PeerProtocolError("sent beyond its receive window while throttled")

    def _rate(self, sender: bytes) -> _PeerRate:
        now = trio.current_time()
        rate = self._rates.get(sender)
        if rate is None:
            if len(self._rates) >= 2 * p2p_peers_max:
                for address, old in list(self._rates.items()):
                    if address not in self._inbound and old.full(now):
                        del self._rates[address]
            rate = self._rates[sender] = _PeerRate(self._options, now)
        return rate

    async def _receive_frames(
        self, sender: bytes, peer_id: ID, frames: Sequence[wire_pb2.Frame]
    ) -> None:
        session = self._sessions.get(sender)
        if session is None:
            # A session (a task, memory) only for a peer that sent a valid envelope.
            if not any(frame.messages for frame in frames):
                return  # acks of a session gone: nothing of ours is outstanding there
            for frame in frames:
                for envelope in frame.messages:
                    check_envelope(envelope, sender=sender, recipient=self._address)
            session = self._inbound_session(sender)
        session.peer_id = peer_id
        session.last_active_s = trio.current_time()
        async with session.inbound_lock:
            fresh, fresh_ids, handled, acks = self._sort_frames(session, frames)
            acknowledged = session.outbox.acknowledge(acks)
            for message_id in acknowledged:
                session.sent_at.pop(message_id, None)
            if fresh or acknowledged:
                session.in_flight.update(fresh_ids)
                delivery = Delivery(session.address_text, tuple(fresh), tuple(acknowledged))
                try:
                    await self._deliveries_send.send(delivery)
                except trio.Cancelled:
                    # Not handed over: take these ids again when the peer re-sends them.
                    session.in_flight.difference_update(fresh_ids)
                    raise
            if handled:
                logger.info(
                    "dropped %d already-handled message ids from %s (first %d); re-acking",
                    len(handled),
                    session.address_text,
                    handled[0],
                )
                session.pending_acks.extend(handled)
                session.send_wakeup.set()

    def _sort_frames(
        self, session: _Session, frames: Sequence[wire_pb2.Frame]
    ) -> tuple[list[wire_pb2.Envelope], list[int], list[int], list[int]]:
        """Validate every envelope; split them into new ones and ones handled before.

        An id handed over but not yet acknowledged by the owner is neither: its ack
        follows once the owner has logged it.
        """
        fresh: list[wire_pb2.Envelope] = []
        fresh_ids: list[int] = []
        batch_ids: set[int] = set()
        handled: list[int] = []
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
                if message_id in session.seen:
                    handled.append(message_id)
                elif message_id not in session.in_flight and message_id not in batch_ids:
                    batch_ids.add(message_id)
                    fresh.append(envelope)
                    fresh_ids.append(message_id)
        return fresh, fresh_ids, handled, acks


async def _reset_quietly(stream: INetStream) -> None:
    """Reset a stream that may already be broken."""
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except NETWORK_ERRORS as error:
            logger.debug("reset of a broken stream failed: %r", error)


def _unread_bytes(stream: INetStream) -> int:
    """Bytes py-libp2p's Yamux holds for ``stream`` that we have not read (0 if unknown)."""
    muxed = getattr(stream, "muxed_stream", None)
    buffers = getattr(getattr(muxed, "conn", None), "stream_buffers", None)
    if not isinstance(buffers, dict):
        return 0
    buffer = buffers.get(getattr(muxed, "stream_id", None))
    return len(buffer) if buffer is not None else 0
