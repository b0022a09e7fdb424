"""The JSON-RPC service: POST / for calls, GET /ws for notifications, bearer-token auth;
GET /dashboard for the web page that shows the node (README.md, "The dashboard")."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

import h11
import trio

from node.core import constants
from node.rpc._dispatch import dispatch_body
from node.rpc._errors import ErrorCode
from node.rpc._http import HttpReader, HttpRefusal, header, refuse
from node.rpc._hub import NotificationHub
from node.rpc._json import JsonValue
from node.rpc._page import page_headers, page_token, websocket_token
from node.rpc._registry import MethodRegistry
from node.rpc._slots import ConnectionSlots, ConnectionStatistics, Slot
from node.rpc._token import bearer_token, token_matches
from node.rpc._websocket import WebSocketSession, check_upgrade, subscription_names

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.rpc")

_RPC_PATH = b"/"
_WEBSOCKET_PATH = b"/ws"
_DASHBOARD_PATH = b"/dashboard"
_JSON = "application/json"
_BUSY_MS = 100  # time spent on a connection refused for want of room


class RpcServer:
    """JSON-RPC 2.0 over HTTP with WebSocket notifications, for one node.

    Args:
        methods: the methods callers may use.
        token: the bearer token every request must carry.
        host: an IP address to bind (loopback by default).
        port: the TCP port; 0 picks a free one.
        request_timeout_ms: a handler's default time to answer one call.
        read_timeout_ms: a client's time to send one whole request.
        header_timeout_ms: a client's time to send a request's line and headers, from
            the connection (its first request) or from the request's first byte (a
            keep-alive connection's later ones). It bounds the WebSocket handshake too:
            the upgrade is a request head, and the node's 101 ends it.
        write_timeout_ms: a client's time to take one response or notification.
        connections_max: open connections (HTTP and WebSocket) served at once.
        unauthenticated_connections_max: of those, connections that have not yet shown
            the token; a new connection past it evicts the oldest of them.
        subscriber_queue_max: notifications queued per subscriber before it is dropped.
        dashboard: the dashboard page (HTML) served at GET /dashboard?token=...; None
            serves none.

    Raises:
        ValueError: a bad host or port, a bound that is not positive,
            ``unauthenticated_connections_max`` above ``connections_max``, or
            ``header_timeout_ms`` above ``read_timeout_ms``.
    """

    def __init__(
        self,
        methods: MethodRegistry,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        request_timeout_ms: int = constants.rpc_request_timeout_ms,
        read_timeout_ms: int = constants.rpc_read_timeout_ms,
        header_timeout_ms: int = constants.rpc_header_timeout_ms,
        write_timeout_ms: int = constants.rpc_write_timeout_ms,
        connections_max: int = constants.rpc_connections_max,
        unauthenticated_connections_max: int = constants.rpc_unauthenticated_connections_max,
        subscriber_queue_max: int = constants.rpc_subscriber_queue_max,
        dashboard: bytes | None = None,
    ) -> None:
        if not token:
            raise ValueError("token: empty")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host: {host!r} is not an IP address") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"port: {port} is out of range")
        for name, value in (
            ("request_timeout_ms", request_timeout_ms),
            ("read_timeout_ms", read_timeout_ms),
            ("header_timeout_ms", header_timeout_ms),
            ("write_timeout_ms", write_timeout_ms),
            ("connections_max", connections_max),
            ("unauthenticated_connections_max", unauthenticated_connections_max),
        ):
            if value <= 0:
                raise ValueError(f"{name}: {value} is not positive")
        if header_timeout_ms > read_timeout_ms:
            raise ValueError(
                f"header_timeout_ms: {header_timeout_ms} is above read_timeout_ms {read_timeout_ms}"
            )
        if unauthenticated_connections_max > connections_max:
            raise ValueError(
                f"unauthenticated_connections_max: {unauthenticated_connections_max} is "
                f"above connections_max {connections_max}"
            )
        self._methods = methods
        self._token = token
        self._host = host
        self._port = port
        self._request_timeout_ms = request_timeout_ms
        self._read_timeout_ms = read_timeout_ms
        self._header_timeout_ms = header_timeout_ms
        self._write_timeout_ms = write_timeout_ms
        self._slots = ConnectionSlots(
            connections_max=connections_max, unauthenticated_max=unauthenticated_connections_max
        )
        self._hub = NotificationHub(queue_max=subscriber_queue_max)
        self._dashboard = dashboard
        self._dashboard_headers = page_headers(dashboard) if dashboard is not None else []

    @property
    def connection_count(self) -> int:
        """Connections being served now."""
        return self._slots.count

    def connection_statistics(self) -> ConnectionStatistics:
        """Connections now, unauthenticated ones among them, evictions and refusals so far."""
        return self._slots.statistics()

    @property
    def subscriber_count(self) -> int:
        """WebSocket subscribers attached now."""
        return self._hub.subscriber_count

    def wanted(self, method: str) -> bool:
        """Whether a subscriber wants notifications called ``method`` (else the caller
        need not build them)."""
        return self._hub.wanted(method)

    def publish(self, method: str, params: Mapping[str, JsonValue]) -> int:
        """Send a notification to every subscriber that wants it; never waits.

        Returns:
            How many subscribers it was queued for (slow ones are dropped instead).

        Raises:
            ValueError: a bad name, or params JSON cannot carry.
            TypeError: params hold a value JSON cannot carry.
        """
        return self._hub.publish(method, params)

    async def run(self, *, task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> NoReturn:
        """Bind, report the URL (``http://host:port``) through ``started``, serve forever."""
        listeners = await trio.open_tcp_listeners(self._port, host=self._host)
        assert len(listeners) == 1, "an IP literal binds exactly one listener"
        port = listeners[0].socket.getsockname()[1]
        host = f"[{self._host}]" if ":" in self._host else self._host
        url = f"http://{host}:{port}"
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            logger.info("JSON-RPC listening on %s", url)
            task_status.started(url)
            await trio.sleep_forever()

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            with trio.CancelScope() as scope:  # cancelled if the connection is evicted
                slot = self._slots.admit(scope)
                if slot is None:
                    await self._refuse_busy(stream)
                    return
                try:
                    await self._converse(stream, slot)
                except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
                    pass  # the client went away or stopped reading: nothing to answer
                except Exception:
                    # Our bug: log it and lose this connection, never the server.
                    logger.exception("RPC connection failed")
                finally:
                    self._slots.release(slot)

    async def _refuse_busy(self, stream: trio.SocketStream) -> None:
        problem = "every connection slot is held by an authenticated client"
        busy = HttpRefusal(503, ErrorCode.OVERLOADED, problem)
        # A flood of refused connections must not pile up tasks: keep each one short.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await refuse(stream, busy, write_timeout_ms=_BUSY_MS, linger_ms=_BUSY_MS)

    async def _refuse_quietly(self, stream: trio.SocketStream, refusal: HttpRefusal) -> None:
        # The client may leave before it hears why.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await refuse(stream, refusal, write_timeout_ms=self._write_timeout_ms)

    async def _converse(self, stream: trio.SocketStream, slot: Slot) -> None:
        reader = HttpReader(stream)
        started = trio.current_time()  # the first request's head is due from the accept
        while True:
            try:
                keep_open = await self._serve_request(reader, slot, started)
            except HttpRefusal as refusal:
                await self._refuse_quietly(stream, refusal)
                return
            if not keep_open or not reader.next_cycle():
                return
            # A later request: idle up to the read timeout, then its head is due.
            with trio.move_on_after(self._read_timeout_ms / 1000) as idle_scope:
                arrived = await reader.wait_for_request()
            if idle_scope.cancelled_caught or not arrived:
                return  # an idle keep-alive connection, or a closed one: just close it
            started = trio.current_time()

    async def _serve_request(self, reader: HttpReader, slot: Slot, started: float) -> bool:
        """Serve one request whose time runs from ``started``; ``True`` if another may follow."""
        with trio.move_on_at(started + self._header_timeout_ms / 1000) as head_scope:
            event = await reader.next_event()
        if head_scope.cancelled_caught:
            if reader.bytes_this_request == 0:
                return False  # a connection that never spoke: just close it
            timeout = f"request headers not received within {self._header_timeout_ms} ms"
            raise HttpRefusal(408, ErrorCode.INVALID_REQUEST, timeout)
        if not isinstance(event, h11.Request):
            return False  # the client closed the connection
        deadline = started + self._read_timeout_ms / 1000
        path = bytes(event.target).partition(b"?")[0]
        if path == _RPC_PATH:
            return await self._serve_call(reader, event, slot, deadline)
        if path == _WEBSOCKET_PATH:
            await self._serve_websocket(reader, event, slot)
            return False
        if path == _DASHBOARD_PATH and self._dashboard is not None:
            return await self._serve_dashboard(reader, event, slot, deadline)
        raise HttpRefusal(404, ErrorCode.INVALID_REQUEST, "not found: use POST / or GET /ws")

    def _check_access(
        self, request: h11.Request, method: bytes, slot: Slot, presented: bytes | None = None
    ) -> None:
        """Refuse a request with another HTTP method or without the token.

        ``presented`` is a token the request carries elsewhere than in its
        Authorization header (the dashboard's URL, a browser's WebSocket protocols).
        """
        if request.method != method:
            allowed = method.decode("ascii")
            raise HttpRefusal(
                405,
                ErrorCode.INVALID_REQUEST,
                f"method {request.method.decode('ascii', 'replace')} not allowed: use {allowed}",
                headers=[("allow", allowed)],
            )
        presented = bearer_token(header(request, b"authorization")) or presented
        if not token_matches(presented, self._token):
            raise HttpRefusal(
                401,
                ErrorCode.UNAUTHORISED,
                "unauthorised: send Authorization: Bearer <token from rpc.token>",
                headers=[("www-authenticate", 'Bearer realm="scnode"')],
            )
        self._slots.authenticate(slot)

    async def _serve_call(
        self, reader: HttpReader, request: h11.Request, slot: Slot, deadline: float
    ) -> bool:
        self._check_access(request, b"POST", slot)
        with trio.move_on_at(deadline) as read_scope:
            body = await reader.read_body(request)
        if read_scope.cancelled_caught:
            timeout = f"request body not received within {self._read_timeout_ms} ms"
            raise HttpRefusal(408, ErrorCode.INVALID_REQUEST, timeout)
        if body is None:
            return False
        answer = await dispatch_body(self._methods, body, timeout_ms=self._request_timeout_ms)
        if answer is None:
            await reader.respond(
                204, b"", write_timeout_ms=self._write_timeout_ms, content_type=_JSON
            )
        else:
            await reader.respond(
                200,
                answer.encode("ascii"),
                write_timeout_ms=self._write_timeout_ms,
                content_type=_JSON,
            )
        return True

    async def _serve_websocket(self, reader: HttpReader, request: h11.Request, slot: Slot) -> None:
        # A browser cannot set headers on a WebSocket: it offers the token as a protocol.
        offered = websocket_token(header(request, b"sec-websocket-protocol"))
        self._check_access(request, b"GET", slot, offered.token)
        check_upgrade(request)
        names = subscription_names(bytes(request.target))
        trailing, _ = reader.connection.trailing_data
        session = WebSocketSession(
            reader.stream, self._hub, write_timeout_ms=self._write_timeout_ms
        )
        await session.serve(request, bytes(trailing), names, subprotocol=offered.subprotocol)

    async def _serve_dashboard(
        self, reader: HttpReader, request: h11.Request, slot: Slot, deadline: float
    ) -> bool:
        assert self._dashboard is not None
        self._check_access(request, b"GET", slot, page_token(bytes(request.target)))
        with trio.move_on_at(deadline) as read_scope:
            body = await reader.read_body(request)  # none, but h11 must see its end
        if read_scope.cancelled_caught or body is None:
            return False
        await reader.respond(
            200,
            self._dashboard,
            write_timeout_ms=self._write_timeout_ms,
            content_type="text/html; charset=utf-8",
            headers=self._dashboard_headers,
        )
        return True
