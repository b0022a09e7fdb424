"""One WebSocket subscriber: the upgrade, a reader for control frames, a writer for the queue."""

from __future__ import annotations

from urllib.parse import parse_qs

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from node.core import constants
from node.rpc._errors import ErrorCode
from node.rpc._http import HttpRefusal, header
from node.rpc._hub import NotificationHub, Subscription, check_notification_name

_CLOSE_POLICY_VIOLATION = 1008
_CLOSE_TIMEOUT_S = 0.2


def subscription_names(target: bytes) -> frozenset[str] | None:
    """The notification names asked for in ``/ws?names=a,b``; ``None`` means all.

    Raises:
        HttpRefusal: 400 for a malformed or too long list.
    """
    _, _, query = target.partition(b"?")
    values = parse_qs(query.decode("ascii", "replace"), keep_blank_values=True).get("names")
    if values is None:
        return None
    names = [name for value in values for name in value.split(",") if name]
    if len(names) > constants.rpc_notification_names_max:
        limit = constants.rpc_notification_names_max
        raise HttpRefusal(400, ErrorCode.INVALID_REQUEST, f"names: more than {limit}")
    try:
        return frozenset(check_notification_name(name) for name in names)
    except ValueError as error:
        raise HttpRefusal(400, ErrorCode.INVALID_REQUEST, f"names: {error}") from None


def check_upgrade(request: h11.Request) -> None:
    """Refuse a GET /ws that is not a WebSocket upgrade (426)."""
    upgrade = (header(request, b"upgrade") or b"").lower()
    connection = (header(request, b"connection") or b"").lower()
    if b"websocket" not in upgrade or b"upgrade" not in connection:
        raise HttpRefusal(
            426,
            ErrorCode.INVALID_REQUEST,
            "GET /ws must be a WebSocket upgrade",
            headers=[("upgrade", "websocket"), ("connection", "Upgrade")],
        )


class WebSocketSession:
    """Serves one subscriber until it closes, is dropped, or the server stops."""

    def __init__(
        self, stream: trio.SocketStream, hub: NotificationHub, *, write_timeout_ms: int
    ) -> None:
        self._stream = stream
        self._hub = hub
        self._write_timeout_s = write_timeout_ms / 1000
        self._ws = WSConnection(ConnectionType.SERVER)
        self._send_lock = trio.Lock()
        # Set while a frame is being written: a send cut short leaves half a frame on
        # the wire, after which no further frame can be sent.
        self._frame_cut = False

    async def serve(
        self,
        request: h11.Request,
        trailing: bytes,
        names: frozenset[str] | None,
        *,
        subprotocol: str | None = None,
    ) -> None:
        """Accept the upgrade (choosing ``subprotocol``, one the client offered), then
        relay notifications.

        Raises:
            HttpRefusal: the upgrade request is malformed (400).
        """
        try:
            self._ws.initiate_upgrade_connection(list(request.headers), request.target)
        except RemoteProtocolError as error:
            raise HttpRefusal(400, ErrorCode.INVALID_REQUEST, f"bad upgrade: {error}") from None
        assert all(isinstance(event, Request) for event in self._ws.events())
        # Subscribe before accepting: a client that sees the 101 misses nothing after it.
        subscription = self._hub.subscribe(names)
        try:
            await self._send(AcceptConnection(subprotocol=subprotocol))
            with subscription.cancel_scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_notifications, subscription)
                    await self._read_frames(trailing)
                    nursery.cancel_scope.cancel(reason="subscriber closed")  # type: ignore[call-arg]
        finally:
            self._hub.unsubscribe(subscription)
        if subscription.dropped_reason is not None:
            await self._close_quietly(subscription.dropped_reason)

    async def _send(self, event: Event) -> None:
        async with self._send_lock:
            with trio.fail_after(self._write_timeout_s):
                self._frame_cut = True
                await self._stream.send_all(self._ws.send(event))
                self._frame_cut = False

    async def _write_notifications(self, subscription: Subscription) -> None:
        async for text in subscription.receive_channel:
            await self._send(TextMessage(data=text))

    async def _read_frames(self, trailing: bytes) -> None:
        # Messages from the subscriber carry nothing we act on: only control frames
        # matter, and data is dropped chunk by chunk, so nothing accumulates.
        if trailing:
            self._ws.receive_data(trailing)
        while True:
            for event in self._ws.events():
                if isinstance(event, Ping):
                    await self._send(event.response())
                elif isinstance(event, CloseConnection):
                    if self._ws.state is ConnectionState.REMOTE_CLOSING:
                        await self._send(event.response())
                    return
            data = await self._stream.receive_some(constants.rpc_read_chunk_bytes)
            if not data:
                return
            self._ws.receive_data(data)

    async def _close_quietly(self, reason: str) -> None:
        # The subscriber is too slow to read: tell it why if it takes the frame at once.
        if self._ws.state is not ConnectionState.OPEN or self._frame_cut:
            return
        with trio.move_on_after(_CLOSE_TIMEOUT_S):
            frame = self._ws.send(CloseConnection(_CLOSE_POLICY_VIOLATION, reason[:120]))
            await self._stream.send_all(frame)
