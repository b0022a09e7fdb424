"""Watchtower values to and from protobuf: a client's request (wire and log), a tower's
entry (engine snapshot) and the records a tower or a client logs."""

from __future__ import annotations

from node.core import (
    address_from_bytes,
    address_to_bytes,
    constants,
    signed_state_from_proto,
    signed_state_to_proto,
)
from node.core.errors import InvalidValueError
from node.engine._records import now_ms
from node.proto import engine_pb2, log_pb2, wire_pb2
from node.protocols import SubmitChallenge, WatchedChannel, WatchRequest


def watch_request_to_proto(request: WatchRequest) -> wire_pb2.WatchRequest:
    message = wire_pb2.WatchRequest(
        supported=signed_state_to_proto(request.supported), release=request.release
    )
    if request.counter is not None:
        message.counter.CopyFrom(signed_state_to_proto(request.counter.candidate))
        message.counter_signature = request.counter.signature
    return message


def watch_request_from_proto(message: wire_pb2.WatchRequest) -> WatchRequest:
    """Decode a request, checking shapes (not signers: ``check_watch_request`` does).

    Raises:
        InvalidValueError: a field is missing or malformed; the error names it.
    """
    if not message.HasField("supported"):
        raise InvalidValueError("watch_request.supported", "missing")
    supported = signed_state_from_proto(message.supported, "watch_request.supported")
    counter = None
    if message.HasField("counter"):
        candidate = signed_state_from_proto(message.counter, "watch_request.counter")
        if len(message.counter_signature) != constants.signature_bytes:
            raise InvalidValueError(
                "watch_request.counter_signature",
                f"must be {constants.signature_bytes} bytes, not {len(message.counter_signature)}",
            )
        counter = SubmitChallenge(candidate, (supported,), message.counter_signature)
    elif message.counter_signature:
        raise InvalidValueError("watch_request.counter_signature", "set without a counter")
    return WatchRequest(supported, counter, message.release)


def watched_record(client: str, request: WatchRequest) -> log_pb2.LogRecord:
    """As a tower: a client's request, checked."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.watch.channel.client = address_to_bytes(client)
    record.watch.channel.request.CopyFrom(watch_request_to_proto(request))
    return record


def watched_event_record(event: log_pb2.ChainEvent) -> log_pb2.LogRecord:
    """As a tower: an adjudicator event of a channel it watches."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.watch.event.CopyFrom(event)
    return record


def tower_record(tower: str) -> log_pb2.LogRecord:
    """As a client: a tower we hand our channels to from now on."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.watch.tower = address_to_bytes(tower)
    return record


def watched_to_proto(watched: WatchedChannel) -> engine_pb2.WatchedEntry:
    message = engine_pb2.WatchedEntry(
        challenged=watched.challenge_turn is not None,
        challenge_turn=watched.challenge_turn or 0,
        finalizes_at=watched.finalizes_at,
        concluded=watched.concluded,
        event_block=watched.event_block,
    )
    for client, request in watched.requests:
        message.requests.add(
            client=address_to_bytes(client), request=watch_request_to_proto(request)
        )
    return message


def watched_from_proto(message: engine_pb2.WatchedEntry) -> WatchedChannel:
    requests = tuple(
        (
            address_from_bytes(item.client, "watched.client"),
            watch_request_from_proto(item.request),
        )
        for item in message.requests
    )
    if not requests:
        raise InvalidValueError("watched.requests", "empty")
    return WatchedChannel(
        requests,
        message.challenge_turn if message.challenged else None,
        message.finalizes_at,
        message.concluded,
        message.event_block,
    )
