"""A hostile peer for tests and benchmarks: a real libp2p host that speaks the node's
message protocol (/scnode/msg/1.0.0) and gossip to a victim node, and never
acknowledges anything the victim sends it.

It writes whatever it is told on a message stream (random bytes, truncated or oversized
frames, envelopes with wrong ids, senders or recipients), floods the victim with valid
envelopes whose payloads the victim must refuse, proposes channels it never funds, and
publishes poisoned announcements, also in the name of identities it made up. What the
victim sends back is counted (``Heard``), never acknowledged.

Used by tests/engine/test_engine_hostile_processes.py and scripts/bench_flood.py; the
node never imports it (tests/test_layering.py). From a process of its own::

    python -m node.testing._attacker --target MULTIADDR [--mib N] [--seconds S]
        [--junk garbage|bad-signature|unknown-voucher|mixed]

floods the target and prints one JSON line of what it sent and heard.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import math
import os
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    address_from_bytes,
    address_to_bytes,
    address_to_destination,
    channel_id,
    signed_state_to_proto,
    voucher_to_proto,
)
from node.core.constants import frame_messages_max, wire_format_version
from node.log import EventLog
from node.p2p import (
    ANNOUNCEMENT_TOPIC,
    MESSAGE_PROTOCOL,
    NETWORK_ERRORS,
    address_bytes_from_peer_id,
    encode_varint,
    key_pair_from_private_key,
    make_host,
    sign_announcement,
)
from node.proto import log_pb2, wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.testing.attacker")

NATIVE_ASSET: Final = "0x" + "00" * 20
LENGTH_PREFIX_BYTES: Final = 4
_READ_CHUNK_BYTES: Final = 64 * 1024
_DIAL_TIMEOUT_S: Final = 10.0
_RETRY_PAUSE_S: Final = 0.05  # between attempts at a stream while the victim refuses us
# Our ids may run this far ahead of the first one the victim has not acknowledged; it
# refuses a stream whose ids pass p2p_outbox_messages_max (200,000) beyond it.
_ID_LEAD_MAX: Final = 100_000
_GROUPS: Final = 64  # distinct envelope bodies of a flood, used in turn
# Protobuf tags (wire.proto): Frame.version=1, .messages=2, .acks=3;
# Envelope.id=1, .sender=2, .recipient=3, .payloads=4.
_TAG_VERSION: Final = b"\x08"
_TAG_MESSAGES: Final = b"\x12"
_TAG_ACKS: Final = b"\x1a"
_TAG_ID: Final = b"\x08"
_TAG_SENDER: Final = b"\x12"
_TAG_RECIPIENT: Final = b"\x1a"
_TAG_PAYLOADS: Final = b"\x22"
_T = TypeVar("_T")

# ---------------------------------------------------------------------------- encoding


def payload_fields(payloads: Iterable[wire_pb2.Payload]) -> bytes:
    """``payloads`` as Envelope.payloads fields, to be joined to envelopes as they are."""
    parts = []
    for payload in payloads:
        body = payload.SerializeToString()
        parts.append(_TAG_PAYLOADS + encode_varint(len(body)) + body)
    return b"".join(parts)


def envelope_bytes(message_id: int, sender: bytes, recipient: bytes, fields: bytes) -> bytes:
    """A serialised Envelope, from ``payload_fields`` (any id, sender and recipient)."""
    return (
        _TAG_ID
        + encode_varint(message_id)
        + _TAG_SENDER
        + encode_varint(len(sender))
        + sender
        + _TAG_RECIPIENT
        + encode_varint(len(recipient))
        + recipient
        + fields
    )


def frame_body(
    envelopes: Iterable[bytes], acks: Sequence[int] = (), version: int = wire_format_version
) -> bytes:
    """A Frame's bytes (no length prefix) of serialised envelopes and ack ids."""
    parts = [_TAG_VERSION + encode_varint(version)]
    parts.extend(_TAG_MESSAGES + encode_varint(len(envelope)) + envelope for envelope in envelopes)
    if acks:
        packed = b"".join(encode_varint(ack) for ack in acks)
        parts.append(_TAG_ACKS + encode_varint(len(packed)) + packed)
    return b"".join(parts)


def length_prefixed(body: bytes, length: int | None = None) -> bytes:
    """``body`` after a 4-byte big-endian length (``length``: announce another one)."""
    announced = len(body) if length is None else length
    assert 0 <= announced < 2**32
    return announced.to_bytes(LENGTH_PREFIX_BYTES, "big") + body


def split_frames(buffer: bytearray) -> list[bytes]:
    """Take the whole frames off the front of ``buffer`` (what the victim sends us)."""
    bodies = []
    while len(buffer) >= LENGTH_PREFIX_BYTES:
        length = int.from_bytes(buffer[:LENGTH_PREFIX_BYTES], "big")
        end = LENGTH_PREFIX_BYTES + length
        if len(buffer) < end:
            break
        bodies.append(bytes(buffer[LENGTH_PREFIX_BYTES:end]))
        del buffer[:end]
    return bodies


# ---------------------------------------------------------------------------- payloads


class Junk(enum.Enum):
    """Payloads a victim must refuse, each as valid an envelope as can be."""

    GARBAGE = "garbage"  # a signed state without a state: refused unparsed
    BAD_SIGNATURE = "bad-signature"  # a prefund with a stranger's signature: one recovery
    UNKNOWN_VOUCHER = "unknown-voucher"  # a voucher of a channel that does not exist
    TINY = "tiny"  # an empty Ack payload: the smallest envelope a victim takes in
    MIXED = "mixed"  # garbage, bad signatures and unknown vouchers in turn


def ledger_prefund(
    parties: Sequence[str],
    amounts: Sequence[int],
    *,
    consensus_app: str,
    nonce: int,
    challenge_duration_s: int = 60,
) -> State:
    """The prefund (turn 0) of a ledger channel between ``parties`` in the native asset."""
    assert len(parties) == len(amounts) >= 2
    fixed = FixedPart(list(parties), nonce, consensus_app, challenge_duration_s)
    allocations = [
        Allocation(address_to_destination(party), amount)
        for party, amount in zip(parties, amounts, strict=True)
    ]
    return State(fixed, b"", [SingleAssetExit(NATIVE_ASSET, allocations)], 0, False)


def fund_payload(signed: SignedState) -> wire_pb2.Payload:
    """A signed state as its DirectFunding objective's payload."""
    objective_id = ObjectiveId(ObjectiveKind.DIRECT_FUND, channel_id(signed.state.fixed))
    return wire_pb2.Payload(
        objective_id=str(objective_id), signed_state=signed_state_to_proto(signed)
    )


def prefund_proposals(
    signer: Signer,
    victim: str,
    count: int,
    *,
    consensus_app: str,
    deposit: int = 1,
    challenge_duration_s: int = 60,
) -> list[wire_pb2.Payload]:
    """``count`` ledger channels proposed to ``victim``, correctly signed, each asking it to
    deposit nothing: a node's policy approves them, and they wait for our deposit."""
    assert count >= 0
    payloads = []
    for _ in range(count):
        state = ledger_prefund(
            (signer.address, victim),
            (deposit, 0),
            consensus_app=consensus_app,
            nonce=secrets.randbits(63),
            challenge_duration_s=challenge_duration_s,
        )
        payloads.append(fund_payload(SignedState(state, {0: signer.sign_state(state)})))
    return payloads


def junk_payloads(
    kind: Junk, signer: Signer, victim: str, *, consensus_app: str, count: int
) -> list[wire_pb2.Payload]:
    """``count`` distinct payloads of ``kind`` from ``signer`` that ``victim`` refuses."""
    assert count > 0
    if kind is Junk.MIXED:
        kinds = [Junk.GARBAGE, Junk.BAD_SIGNATURE, Junk.UNKNOWN_VOUCHER]
        return [
            junk_payloads(kinds[index % 3], signer, victim, consensus_app=consensus_app, count=1)[0]
            for index in range(count)
        ]
    stranger = Signer(secrets.token_bytes(31).rjust(32, b"\x07"))
    payloads = []
    for _ in range(count):
        fake_channel = secrets.token_bytes(32)
        if kind is Junk.TINY:
            payload = wire_pb2.Payload(ack=wire_pb2.Ack())
        elif kind is Junk.GARBAGE:
            payload = wire_pb2.Payload(objective_id=f"DirectFunding-0x{fake_channel.hex()}")
            payload.signed_state.SetInParent()
        elif kind is Junk.BAD_SIGNATURE:
            state = ledger_prefund(
                (signer.address, victim),
                (1, 0),
                consensus_app=consensus_app,
                nonce=secrets.randbits(63),
            )
            payload = fund_payload(SignedState(state, {0: stranger.sign_state(state)}))
        else:
            voucher = signer.voucher(fake_channel, 1 + secrets.randbelow(10**6))
            payload = wire_pb2.Payload(
                objective_id=f"VirtualFunding-0x{fake_channel.hex()}",
                voucher=voucher_to_proto(voucher),
            )
        payloads.append(payload)
    return payloads


# ---------------------------------------------------------------------------- records


class AckedIds:
    """Our ids the victim acknowledged: the first one missing, and those above it."""

    def __init__(self) -> None:
        self.contiguous_max = 0
        self.above: set[int] = set()

    def update(self, acked: Iterable[int]) -> None:
        self.above.update(ack for ack in acked if ack > self.contiguous_max)
        while self.contiguous_max + 1 in self.above:
            self.contiguous_max += 1
            self.above.discard(self.contiguous_max)

    def missing(self, start: int, below: int, count_max: int) -> list[int]:
        """Up to ``count_max`` ids from ``start`` (at least the first missing one) to
        ``below`` that were not acknowledged, oldest first."""
        found: list[int] = []
        message_id = max(start, self.contiguous_max + 1)
        while message_id < below and len(found) < count_max:
            if message_id not in self.above:
                found.append(message_id)
            message_id += 1
        return found


@dataclass
class Heard:
    """What the victim sent us (never acknowledged).

    Attributes:
        streams: message streams the victim opened to us.
        frames: frames read on them, re-sends included.
        bytes: bytes read on them.
        message_ids: distinct ids of the victim's messages: its backlog with us.
        payloads: payloads read, by body (``rejection``, ``signed_state``...), re-sends
            included.
        rejection_reasons: rejections read, by reason name, re-sends included.
        acked: our message ids the victim acknowledged (it logged them).
        acks: acknowledgements read, repeats included.
    """

    streams: int = 0
    frames: int = 0
    bytes: int = 0
    message_ids: set[int] = field(default_factory=set)
    payloads: Counter[str] = field(default_factory=Counter)
    rejection_reasons: Counter[str] = field(default_factory=Counter)
    acked: AckedIds = field(default_factory=lambda: AckedIds())
    acks: int = 0

    def take(self, frame: wire_pb2.Frame) -> None:
        """Count one frame of the victim's."""
        self.frames += 1
        self.acks += len(frame.acks)
        self.acked.update(frame.acks)
        for envelope in frame.messages:
            self.message_ids.add(envelope.id)
            for payload in envelope.payloads:
                body = payload.WhichOneof("body") or "unknown"
                self.payloads[body] += 1
                if body == "rejection":
                    reason = wire_pb2.RejectionReason.Name(payload.rejection.reason)
                    self.rejection_reasons[reason.removeprefix("REJECTION_REASON_")] += 1

    def summary(self) -> dict[str, Any]:
        """Figures for a JSON line."""
        return {
            "streams": self.streams,
            "frames": self.frames,
            "bytes": self.bytes,
            "messages": len(self.message_ids),
            "message_id_max": max(self.message_ids, default=0),
            "payloads": dict(self.payloads),
            "rejection_reasons": dict(self.rejection_reasons),
            "acks": self.acks,
            "acked_contiguous_max": self.acked.contiguous_max,
        }


@dataclass
class FloodStats:
    """What one flood wrote.

    Attributes:
        bytes: bytes the victim's streams took (frames, length prefixes included).
        envelopes: envelopes in them.
        payloads: payloads in them.
        frames: frames written.
        resent: envelopes written again (the victim had not acknowledged them).
        streams_lost: streams that broke under us (reset by the victim).
        seconds: how long it lasted.
    """

    bytes: int = 0
    envelopes: int = 0
    payloads: int = 0
    frames: int = 0
    resent: int = 0
    streams_lost: int = 0
    seconds: float = 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / 2**20 / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------- the peer


class Attacker:
    """A hostile libp2p peer (see the module docstring): ``run`` it, ``connect`` it to the
    victim, then ``write``, ``flood`` or ``announce``.

    Args:
        private_key: its identity (default: a new one).
        gossip: also join the announcement topic, so that ``announce`` reaches the victim.
    """

    def __init__(self, private_key: bytes | None = None, *, gossip: bool = False) -> None:
        self.private_key = private_key or secrets.token_bytes(31).rjust(32, b"\x05")
        self.signer = Signer(self.private_key)
        self.address = self.signer.address
        self.address_bytes = address_to_bytes(self.address)
        self.host = make_host(self.private_key)
        self.peer_id = self.host.get_id().to_base58()
        self.heard = Heard()
        self.next_id = 1  # of our next envelope
        self.victim: ID | None = None
        self.victim_address = b""
        self._victim_multiaddr = ""
        self._stream: INetStream | None = None
        self._resend_after = 0  # the last id sent again while the victim lags
        self._router: GossipSub | None = None
        self.pubsub: Pubsub | None = None
        if gossip:
            self._router = GossipSub(
                protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID],
                degree=6,
                degree_low=4,
                degree_high=12,
                heartbeat_interval=1,
                spam_protection_enabled=False,  # it would drop our own publishes above 10/s
            )
            self.pubsub = Pubsub(self.host, self._router)
            _guard_pubsub(self.host, self.pubsub)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on 127.0.0.1 and serve until cancelled."""
        async with self.host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            self.host.set_stream_handler(MESSAGE_PROTOCOL, self._listen)
            if self.pubsub is None or self._router is None:
                task_status.started()
                await trio.sleep_forever()
            async with (
                background_trio_service(self.pubsub),
                background_trio_service(self._router),
                trio.open_nursery() as nursery,
            ):
                await self.pubsub.wait_until_ready()
                subscription = await self.pubsub.subscribe(ANNOUNCEMENT_TOPIC)
                nursery.start_soon(_discard, subscription)
                task_status.started()
                await trio.sleep_forever()

    async def connect(self, multiaddr: str) -> None:
        """Dial the victim at ``multiaddr`` (``/.../p2p/PEER_ID``)."""
        info = info_from_p2p_addr(Multiaddr(multiaddr))
        with trio.fail_after(_DIAL_TIMEOUT_S):
            await self.host.connect(info)
        self.victim = info.peer_id
        self.victim_address = address_bytes_from_peer_id(info.peer_id)
        self._victim_multiaddr = multiaddr

    # ------------------------------------------------------------------ raw writes

    async def write(self, data: bytes) -> bool:
        """Write ``data`` on our message stream to the victim, opening one (and dialling
        again) if none is open; False if that failed or the stream broke (the victim
        reset it or cut us off): the next write opens another."""
        try:
            stream = await self._open_stream()
            await stream.write(data)
        except NETWORK_ERRORS as error:
            logger.debug("stream to the victim lost: %r", error)
            await self.drop_stream()
            return False
        return True

    async def end_stream(self) -> None:
        """Close our message stream for writing (what is unfinished stays unfinished)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await _close(stream)

    async def drop_stream(self) -> None:
        """Reset our message stream, if one is open."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await _reset(stream)

    async def _open_stream(self) -> INetStream:
        if self._stream is None:
            self._stream = await self._new_stream(MESSAGE_PROTOCOL)
        return self._stream

    async def _new_stream(self, protocol: str) -> INetStream:
        assert self.victim is not None, "connect first"
        if not self.host.get_network().get_connections(self.victim):
            await self.connect(self._victim_multiaddr)
        with trio.fail_after(_DIAL_TIMEOUT_S):
            stream: INetStream = await self.host.new_stream(self.victim, [TProtocol(protocol)])
        return stream

    def take_ids(self, count: int) -> range:
        """The next ``count`` ids of our envelopes."""
        assert count >= 0
        ids = range(self.next_id, self.next_id + count)
        self.next_id += count
        return ids

    def envelope(
        self,
        payloads: Sequence[wire_pb2.Payload],
        *,
        message_id: int | None = None,
        sender: bytes | None = None,
        recipient: bytes | None = None,
    ) -> bytes:
        """A serialised envelope from us to the victim (unless told otherwise), with the
        next id (unless told otherwise)."""
        if message_id is None:
            (message_id,) = self.take_ids(1)
        return envelope_bytes(
            message_id,
            self.address_bytes if sender is None else sender,
            self.victim_address if recipient is None else recipient,
            payload_fields(payloads),
        )

    async def send(self, payloads: Sequence[wire_pb2.Payload], *, per_envelope: int = 1) -> bool:
        """``payloads``, ``per_envelope`` to an envelope, in frames of at most 256 KiB."""
        assert per_envelope > 0
        envelopes = [
            self.envelope(payloads[start : start + per_envelope])
            for start in range(0, len(payloads), per_envelope)
        ]
        frames: list[list[bytes]] = [[]]
        size = 0
        for envelope in envelopes:
            if frames[-1] and size + len(envelope) > 256 * 1024:
                frames.append([])
                size = 0
            frames[-1].append(envelope)
            size += len(envelope) + 8
        return all([await self.write(length_prefixed(frame_body(f))) for f in frames if f])

    async def raw_stream(
        self, chunks: Sequence[bytes], *, reset: bool = False, protocol: str = MESSAGE_PROTOCOL
    ) -> bool:
        """A new stream of ``protocol`` (any the victim speaks) carrying ``chunks`` (any
        bytes), then closed (``reset``: reset); False if the victim broke it first."""
        try:
            stream = await self._new_stream(protocol)
        except NETWORK_ERRORS as error:
            logger.debug("no %s stream: %r", protocol, error)
            return False
        try:
            for chunk in chunks:
                await stream.write(chunk)
        except NETWORK_ERRORS as error:
            logger.debug("the victim broke a %s stream: %r", protocol, error)
            await _reset(stream)
            return False
        await (_reset(stream) if reset else _close(stream))
        return True

    # ------------------------------------------------------------------ the flood

    async def flood(
        self,
        payloads: Sequence[wire_pb2.Payload],
        *,
        bytes_max: int,
        seconds_max: float = math.inf,
        per_envelope: int = 1,
        frame_bytes: int = 256 * 1024,
    ) -> FloodStats:
        """Valid envelopes of ``payloads`` (used in turn, ``per_envelope`` to an envelope)
        in frames of about ``frame_bytes`` (at most frame_messages_max envelopes), as fast
        as the victim's stream takes them, until ``bytes_max`` bytes are written or
        ``seconds_max`` have passed.

        The victim refuses a stream whose ids run too far ahead of the first one it has
        not acknowledged (it drops envelopes it has no time for): once ours are
        ``_ID_LEAD_MAX`` ahead, the ones it has not acknowledged are sent again.
        """
        assert payloads
        assert per_envelope > 0
        assert frame_bytes > 0
        groups = _payload_groups(payloads, per_envelope)
        group_bytes = sum(len(group) for group in groups) // len(groups)
        per_frame = min(max(1, frame_bytes // (group_bytes + 50)), frame_messages_max)
        stats = FloodStats()
        started = trio.current_time()
        with trio.move_on_after(seconds_max):
            while stats.bytes < bytes_max:
                ids, resent = self._flood_ids(per_frame)
                if not ids:
                    await trio.sleep(_RETRY_PAUSE_S)  # the victim has all but what it holds
                    continue
                envelopes = [
                    envelope_bytes(i, self.address_bytes, self.victim_address, groups[i % _GROUPS])
                    for i in ids
                ]
                data = length_prefixed(frame_body(envelopes))
                if not await self.write(data):
                    stats.streams_lost += 1
                    await trio.sleep(_RETRY_PAUSE_S)
                    continue
                stats.bytes += len(data)
                stats.frames += 1
                stats.envelopes += len(ids)
                stats.payloads += len(ids) * per_envelope
                stats.resent += resent
        stats.seconds = trio.current_time() - started
        return stats

    def _flood_ids(self, count: int) -> tuple[list[int], int]:
        """The ids of the next frame of a flood, and how many of them are sent again."""
        acked = self.heard.acked
        if self.next_id - acked.contiguous_max <= _ID_LEAD_MAX:
            return list(self.take_ids(count)), 0
        start = max(self._resend_after, acked.contiguous_max)
        again = acked.missing(start + 1, self.next_id, count)
        self._resend_after = again[-1] if again else 0
        return again, len(again)

    async def _listen(self, stream: INetStream) -> None:
        """Read what the victim sends us; acknowledge nothing."""
        self.heard.streams += 1
        buffer = bytearray()
        try:
            while data := await stream.read(_READ_CHUNK_BYTES):
                self.heard.bytes += len(data)
                buffer += data
                for body in split_frames(buffer):
                    self.heard.take(wire_pb2.Frame.FromString(body))
        except NETWORK_ERRORS as error:
            logger.debug("the victim's stream ended: %r", error)

    # ------------------------------------------------------------------ gossip

    async def announce(self, data: bytes, *, as_key: bytes | None = None) -> None:
        """Publish ``data`` on the announcement topic, originated (and signed, as
        GossipSub wants) by the identity of ``as_key`` (default: ours): a relay passes on
        what anyone published, so one host speaks for as many identities as it likes."""
        assert self.pubsub is not None, "Attacker(gossip=True)"
        key_pair = key_pair_from_private_key(as_key or self.private_key)
        message = rpc_pb2.Message(
            data=data,
            topicIDs=[ANNOUNCEMENT_TOPIC],
            from_id=ID.from_pubkey(key_pair.public_key).to_bytes(),
            seqno=secrets.token_bytes(8),
        )
        signed = PUBSUB_SIGNING_PREFIX.encode() + message.SerializeToString()
        message.signature = key_pair.private_key.sign(signed)
        message.key = key_pair.public_key.serialize()
        await self.pubsub.push_msg(self.host.get_id(), message)


async def _close(stream: INetStream) -> None:
    with trio.move_on_after(1):
        try:
            await stream.close()
        except NETWORK_ERRORS as error:
            logger.debug("closing a stream failed: %r", error)


async def _reset(stream: INetStream) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except NETWORK_ERRORS as error:
            logger.debug("reset of a broken stream failed: %r", error)


def _payload_groups(payloads: Sequence[wire_pb2.Payload], per_envelope: int) -> list[bytes]:
    """Envelope bodies of ``per_envelope`` payloads each, taking ``payloads`` in turn."""
    fields = [payload_fields([payload]) for payload in payloads]
    return [
        b"".join(fields[(group * per_envelope + k) % len(fields)] for k in range(per_envelope))
        for group in range(_GROUPS)
    ]


def _guard_pubsub(host: IHost, pubsub: Pubsub) -> None:
    """Serve pubsub streams so that what a peer sends cannot stop our host: py-libp2p
    0.8.1 lets a DecodeError out of its handler (the node guards its own the same way)."""

    async def guarded(stream: INetStream) -> None:
        try:
            await pubsub.stream_handler(stream)
        except Exception as error:  # whatever py-libp2p raises on a peer's bytes
            logger.debug("pubsub stream reset: %r", error)
            await _reset(stream)
            pubsub._handle_dead_peer(stream.muxed_conn.peer_id)

    for protocol in (PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID):
        host.set_stream_handler(protocol, guarded)


async def _discard(subscription: Any) -> None:
    """Take the announcements we hear, so that py-libp2p's queue never overflows."""
    while True:
        await subscription.get()


def announcement(
    private_key: bytes,
    *,
    multiaddrs: Sequence[str],
    time_ms: int,
    ledgers: Sequence[wire_pb2.LedgerOffer] = (),
    peer_id: str | None = None,
) -> bytes:
    """A SignedAnnouncement signed by ``private_key`` as a node signs its own, whatever
    it says (``peer_id``: another identity's, default the key's)."""
    key_pair = key_pair_from_private_key(private_key)
    body = wire_pb2.Announcement(
        address=address_to_bytes(Signer(private_key).address),
        peer_id=peer_id or ID.from_pubkey(key_pair.public_key).to_base58(),
        multiaddrs=list(multiaddrs),
        ledgers=list(ledgers),
        time_ms=time_ms,
    )
    return sign_announcement(body, private_key)


def now_ms() -> int:
    """The wall clock, as announcements carry it."""
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------- the damage


@dataclass
class LogShare:
    """What a peer made a node log, read from the node's log after it stopped.

    Attributes:
        records: records the peer caused, by kind (``received_messages``, ...).
        bytes: their serialised bytes, by kind.
        message_ids: ids of the peer's envelopes logged as received.
        total_records: every record in the range read.
        total_bytes: their serialised bytes.
    """

    records: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    message_ids: int = 0
    total_records: int = 0
    total_bytes: int = 0

    @property
    def peer_bytes(self) -> int:
        """Bytes of the records the peer caused."""
        return sum(self.bytes.values())


def log_share(log_path: os.PathLike[str] | str, peer: str, *, after_seq: int = 0) -> LogShare:
    """The records after ``after_seq`` in the log at ``log_path`` that ``peer`` caused:
    its envelopes received, its inputs rejected, our messages to it, the states of its
    channels and the decisions on its proposals. Open the log of a stopped node (a
    read-only open beside a live one misses what it writes later)."""
    address = address_to_bytes(peer)
    share = LogShare()
    with EventLog.open(log_path, read_only=True) as log:
        for record in log.read(after_seq + 1):
            size = record.ByteSize()
            share.total_records += 1
            share.total_bytes += size
            kind = record.WhichOneof("payload") or "unknown"
            if _caused_by(record, address):
                share.records[kind] += 1
                share.bytes[kind] += size
                if kind == "received_messages":
                    share.message_ids += len(record.received_messages.message_ids)
    return share


def _caused_by(record: log_pb2.LogRecord, address: bytes) -> bool:
    match record.WhichOneof("payload"):
        case "received_messages":
            return record.received_messages.peer == address
        case "rejected":
            return record.rejected.peer == address
        case "sent_message":
            return record.sent_message.peer == address
        case "accepted_state":
            participants = record.accepted_state.signed_state.state.fixed.participants
            return address in participants
        case "command":
            decision = record.command.objective_decision
            return record.command.HasField("objective_decision") and decision.proposer == address
        case _:
            return False


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), KiB."""
    with open(f"/proc/{pid}/status") as status:
        lines = status.readlines()
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for process {pid}")


def directory_bytes(path: os.PathLike[str] | str) -> int:
    """Bytes of the files under ``path`` (a RocksDB log: what it takes on disk)."""
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


# ---------------------------------------------------------------------------- in a thread


class AttackerThread:
    """An ``Attacker`` served by a trio loop of its own in a thread, for synchronous
    callers (process tests): ``with AttackerThread(attacker) as thread:
    thread.call(attacker.connect, multiaddr)``."""

    def __init__(self, attacker: Attacker, *, start_timeout_s: float = 30.0) -> None:
        self.attacker = attacker
        self._start_timeout_s = start_timeout_s
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="attacker", daemon=True)

    def __enter__(self) -> AttackerThread:
        self._thread.start()
        if not self._ready.wait(self._start_timeout_s) or self._token is None:
            raise RuntimeError(f"the attacker did not start: {self._failure!r}")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def call(self, function: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run ``function(*args)`` in the attacker's loop; returns its result."""
        assert self._token is not None, "enter the thread first"
        try:
            return trio.from_thread.run(function, *args, trio_token=self._token)
        except (trio.RunFinishedError, trio.Cancelled):
            self._thread.join(timeout=5)
            raise RuntimeError(f"the attacker's loop ended: {self._failure!r}") from None

    def stop(self) -> None:
        """Stop the attacker's host and loop."""
        if self._token is not None and self._scope is not None and self._thread.is_alive():
            scope = self._scope
            trio.from_thread.run_sync(scope.cancel, trio_token=self._token)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as error:  # reported to the caller: the thread ends anyway
            self._failure = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            await nursery.start(self.attacker.run)
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()


# ---------------------------------------------------------------------------- command line


async def _flood_main(arguments: argparse.Namespace) -> dict[str, Any]:
    attacker = Attacker(bytes.fromhex(arguments.key) if arguments.key else None)
    async with trio.open_nursery() as nursery:
        await nursery.start(attacker.run)
        await attacker.connect(arguments.target)
        payloads = junk_payloads(
            Junk(arguments.junk),
            attacker.signer,
            address_from_bytes(attacker.victim_address),
            consensus_app=arguments.consensus_app,
            count=_GROUPS * arguments.per_envelope,
        )
        print(json.dumps({"event": "flooding", "address": attacker.address}), flush=True)
        cpu_before_s = time.process_time()
        stats = await attacker.flood(
            payloads,
            bytes_max=int(arguments.mib * 2**20),
            seconds_max=arguments.seconds,
            per_envelope=arguments.per_envelope,
            frame_bytes=arguments.frame_kib * 1024,
        )
        cpu_s = time.process_time() - cpu_before_s
        await trio.sleep(arguments.linger_s)  # what the victim still sends back
        nursery.cancel_scope.cancel()
    return {
        "event": "done",
        "flood": {**asdict(stats), "mib_per_s": round(stats.mib_per_s, 2)},
        "heard": attacker.heard.summary(),
        "cpu_s": round(cpu_s, 2),  # what the flood cost its own machine
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Flood a node from this process; print one JSON line of what was sent and heard."""
    parser = argparse.ArgumentParser(prog="python -m node.testing._attacker")
    parser.add_argument("--target", required=True, help="the victim's /.../p2p/ID multiaddr")
    parser.add_argument("--mib", type=float, default=64.0, help="junk to send, MiB")
    parser.add_argument("--seconds", type=float, default=math.inf, help="at most this long")
    parser.add_argument("--junk", choices=[kind.value for kind in Junk], default="mixed")
    parser.add_argument("--per-envelope", type=int, default=1, help="payloads per envelope")
    parser.add_argument("--frame-kib", type=int, default=256, help="frame size, KiB")
    parser.add_argument("--consensus-app", default=NATIVE_ASSET, help="for prefund junk")
    parser.add_argument("--key", help="the attacker's key, hex (default: a new one)")
    parser.add_argument("--linger-s", type=float, default=0.5)
    arguments = parser.parse_args(argv)
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    result = trio.run(_flood_main, arguments)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
