"""The watchtower, both sides, in the loop.

As a client, a node hands each of its towers what answers a stale challenge of a
channel (``node.protocols._watch``) whenever that changes: a new supported state, a
larger voucher received as a payee, a channel closed (released). The hand-over is a
message like any other, logged before it leaves.

As a tower (``scnode run --watchtower``), a node checks a client's request, keeps the
latest one per channel and client (bounded per client and in clients), logs the
adjudicator events of those channels, and answers a stale challenge with a Guard
objective: a checkpoint, or the client's counter-challenge, paid from its own chain
key. It never holds a client's key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from node.core import Signer, constants, signed_state_to_proto, to_checksum_address
from node.core.errors import PeerFault, PeerStateError
from node.derive import Deriver
from node.engine._config import EngineConfig
from node.engine._disputes import candidate_of
from node.engine._errors import CommandRefusedError, Refusal
from node.engine._inputs import AddWatchtower
from node.engine._peers import PolicyRefusal
from node.engine._records import guard_record
from node.engine._state import EngineState
from node.engine._step import Step
from node.engine._views import ViewCache, snapshot_from_view
from node.engine._watch_codec import (
    tower_record,
    watch_request_from_proto,
    watch_request_to_proto,
    watched_event_record,
    watched_record,
)
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    ChannelSnapshot,
    Guard,
    ObjectiveId,
    ObjectiveKind,
    WatchedChannel,
    WatchRequest,
    check_watch_request,
    replaces,
    stale_answer,
    watch_request_for,
)

logger = logging.getLogger("node.engine")

# What a hand-over says, to send a new one only when that changes.
_HandKey = tuple[int, int, bool]


class WatchtowerMixin:
    """The engine's watchtower sides (mixed into ``Engine``)."""

    address: str
    signer: Signer
    payment_app: str
    config: EngineConfig
    state: EngineState
    views: ViewCache
    _log: Callable[[Step, log_pb2.LogRecord], None]
    _publish: Callable[[str, Mapping[str, Any]], None]
    deriver: Deriver

    def _init_tower(self) -> None:
        # Per channel, what our towers last got (forgotten on restart: the next change
        # of a channel hands it over again).
        self._handed: dict[bytes, _HandKey] = {}

    # ------------------------------------------------------------------ as a client

    def _take_add_watchtower(self, step: Step, command: AddWatchtower) -> None:
        """Hand our channels to one more tower from now on (and everything open now)."""
        tower = command.tower
        if tower == self.address:
            command.reply.fail(
                CommandRefusedError(Refusal.INVALID, "a node cannot be its own watchtower")
            )
            return
        if tower in self.state.towers:
            command.reply.answer(False)
            return
        self._log(step, tower_record(tower))
        for view in self.deriver.channels():
            if self.address not in {to_checksum_address(p) for p in view.fixed.participants}:
                continue
            request = self._request_of(snapshot_from_view(view))
            if request is not None and not request.release:
                step.send(tower, _payload(request))
        reply = command.reply
        step.answers.append(lambda: reply.answer(True))
        step.refusals.append(
            lambda: reply.fail(CommandRefusedError(Refusal.UNAVAILABLE, "the log write failed"))
        )
        logger.info("watchtower %s: our channels are handed to it from now on", tower)

    def _hand_to_towers(self, step: Step) -> None:
        """After a step's records: hand each tower what changed in the channels they
        named (a new supported state, a larger voucher received, a close)."""
        if not self.state.towers:
            return
        handed: dict[bytes, _HandKey | None] = {}
        for channel in _channels_changed(step.records):
            snapshot = self.views.snapshot(channel)
            if snapshot is None:
                continue
            request = self._request_of(snapshot)
            if request is None:
                continue
            key = _hand_key(request)
            if self._handed.get(channel) == key:
                continue
            for tower in self.state.towers:
                step.send(tower, _payload(request))
            handed[channel] = None if request.release else key
        if handed:
            step.answers.append(lambda: self._remember_handed(handed))

    def _remember_handed(self, handed: dict[bytes, _HandKey | None]) -> None:
        for channel, key in handed.items():
            if key is None:
                self._handed.pop(channel, None)
            else:
                self._handed[channel] = key

    def _request_of(self, snapshot: ChannelSnapshot) -> WatchRequest | None:
        largest = self.state.received.get(snapshot.channel_id)
        return watch_request_for(snapshot, self.signer, self.payment_app, largest)

    # ------------------------------------------------------------------ as a tower

    def _peer_watch_request(self, step: Step, peer: str, payload: wire_pb2.Payload) -> None:
        """A client's request: checked, bounded, logged; a challenge already registered
        is answered at once.

        Raises:
            PolicyRefusal: not a tower, not our client, or over a bound.
            PeerStateError, InvalidValueError: the request is malformed or forged.
        """
        if not self.config.watchtower:
            raise PolicyRefusal("this node is not a watchtower")
        clients = self.config.watchtower_clients
        if clients is not None and peer not in clients:
            raise PolicyRefusal(f"{peer} is not a client of this watchtower")
        request = watch_request_from_proto(payload.watch_request)
        check_watch_request(request, peer)
        channel = request.channel_id
        watched = self.state.watched.get(channel)
        held = watched.request_of(peer) if watched is not None else None
        if held is None:
            if request.release:
                return  # nothing held: nothing to forget
            self._check_room(peer)
        elif not replaces(request, held):
            raise PeerStateError(
                PeerFault.WRONG_TURN,
                f"turn {request.supported.state.turn_num} is older than the turn"
                f" {held.supported.state.turn_num} held",
            )
        elif held == request:
            return
        self._log(step, watched_record(peer, request))
        after = self.state.watched.get(channel)
        if after is not None and stale_answer(after) is not None:
            self._start_guard(step, after)

    def _check_room(self, client: str) -> None:
        counts = self.state.watch_counts
        if client not in counts and len(counts) >= constants.watchtower_clients_max:
            raise PolicyRefusal(
                f"this watchtower serves {constants.watchtower_clients_max} clients already"
            )
        if counts.get(client, 0) >= constants.watchtower_channels_per_client_max:
            raise PolicyRefusal(
                f"this watchtower watches {constants.watchtower_channels_per_client_max}"
                f" channels of {client} already: release closed ones"
            )

    def _take_watched_event(self, step: Step, event: log_pb2.ChainEvent) -> None:
        """An adjudicator event of a channel we watch for clients: logged, and a stale
        challenge answered."""
        case = event.WhichOneof("event")
        if case not in ("challenge_registered", "challenge_cleared", "concluded"):
            return
        channel = getattr(event, case).channel_id
        watched = self.state.watched[channel]
        logged = log_pb2.ChainEvent()
        logged.CopyFrom(event)
        if case == "challenge_registered":
            _complete_candidate(logged.challenge_registered, watched)
        self._log(step, watched_event_record(logged))
        guard_id = ObjectiveId(ObjectiveKind.GUARD, channel)
        if guard_id in self.state.running:
            step.dirty.add(guard_id)
        after = self.state.watched[channel]
        if case == "challenge_registered" and stale_answer(after) is not None:
            self._start_guard(step, after)
            self._publish(
                "watched_channel_challenged",
                {
                    "channel_id": "0x" + channel.hex(),
                    "clients": [client for client, _ in after.requests],
                    "candidate_turn_num": after.challenge_turn,
                    "finalizes_at": after.finalizes_at,
                },
            )

    def _start_guard(self, step: Step, watched: WatchedChannel) -> None:
        guard = Guard(watched.fixed)
        entry = self.state.entry(guard.id)
        if entry is not None and entry.running:
            step.dirty.add(guard.id)
            return
        logger.warning(
            "0x%s: a stale challenge of a client's channel: answering it",
            watched.channel_id.hex(),
        )
        self._log(step, guard_record(guard.id, guard.fixed))
        step.dirty.add(guard.id)


def _payload(request: WatchRequest) -> wire_pb2.Payload:
    guard_id = ObjectiveId(ObjectiveKind.GUARD, request.channel_id)
    return wire_pb2.Payload(
        objective_id=str(guard_id), watch_request=watch_request_to_proto(request)
    )


def _hand_key(request: WatchRequest) -> _HandKey:
    """The supported turn, what the counter-challenge pays the payee (redemption states
    share a turn: the amount tells them apart) and whether the channel is released."""
    counter = request.counter
    paid = counter.candidate.state.outcome[0].allocations[-1].amount if counter else 0
    return (request.supported.state.turn_num, paid, request.release)


def _channels_changed(records: Iterable[log_pb2.LogRecord]) -> list[bytes]:
    """Channels whose hand-over may have changed: a state logged, a voucher received."""
    channels: dict[bytes, None] = {}
    for record in records:
        case = record.WhichOneof("payload")
        if case == "accepted_state":
            channels[record.accepted_state.channel_id] = None
        elif case == "accepted_voucher" and not record.accepted_voucher.sent:
            channels[record.accepted_voucher.voucher.channel_id] = None
    return list(channels)


def _complete_candidate(registered: log_pb2.ChallengeRegistered, watched: WatchedChannel) -> None:
    """The event's candidate made whole with the channel's fixed part; if it does not
    decode, its variable part stays (the turn is what a tower reads)."""
    if not registered.HasField("candidate_part"):
        return
    candidate = candidate_of(registered, ChannelSnapshot(watched.fixed))
    if candidate is None:
        del registered.candidate_signatures[:]
        return
    registered.candidate.CopyFrom(signed_state_to_proto(candidate))
    registered.ClearField("candidate_part")
    del registered.candidate_signatures[:]
