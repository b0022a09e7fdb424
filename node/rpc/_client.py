"""Clients of the node's JSON-RPC interface: async (trio) with notifications, and sync."""

from __future__ import annotations

import contextlib
import http.client
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote, urlsplit

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from node.core import constants
from node.rpc._errors import RpcConnectionError, RpcError
from node.rpc._json import JsonValue, decode_json, encode_json

_CLOSE_NORMAL = 1000
_CLOSE_ABNORMAL = 1006
_CLOSE_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class Notification:
    """One notification from the node, e.g. ``objective_completed``."""

    method: str
    params: dict[str, JsonValue]


@dataclass(frozen=True)
class Endpoint:
    """Where the node listens: host and port from an ``http://host:port`` URL."""

    host: str
    port: int

    @staticmethod
    def parse(url: str) -> Endpoint:
        """Parse ``http://host:port``.

        Raises:
            ValueError: not an http URL with a host and a port.
        """
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"url: {url!r} is not http://host:port")
        return Endpoint(parts.hostname, parts.port)

    @property
    def authority(self) -> str:
        """``host:port`` for the Host header."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def request_body(request_id: int, method: str, params: dict[str, JsonValue]) -> bytes:
    """The JSON of one call with named params."""
    call = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    return encode_json(call).encode("ascii")


def parse_response(status: int, body: bytes) -> JsonValue:
    """The result of one call from the HTTP status and body (pure).

    Raises:
        RpcError: the node answered with a JSON-RPC error (also on 401, 413, ...).
        RpcConnectionError: the answer is not a JSON-RPC response.
    """
    try:
        message = decode_json(body)
    except ValueError:
        raise RpcConnectionError(f"HTTP {status}: the body is not JSON") from None
    return _result_of(status, message)


def _result_of(status: int, message: object) -> JsonValue:
    """The result of one decoded JSON-RPC response (see ``parse_response``)."""
    if not isinstance(message, dict):
        raise RpcConnectionError(f"HTTP {status}: expected a JSON-RPC response object")
    error = message.get("error")
    if isinstance(error, dict):
        code, text = error.get("code"), error.get("message")
        if isinstance(code, int) and isinstance(text, str):
            raise RpcError(code, text, error.get("data"))
        raise RpcConnectionError(f"HTTP {status}: malformed JSON-RPC error {error!r:.200}")
    if status != 200 or "result" not in message:
        raise RpcConnectionError(f"HTTP {status}: no result in the response")
    result: JsonValue = message["result"]
    return result


def batch_request_body(calls: Sequence[tuple[str, dict[str, JsonValue]]]) -> bytes:
    """The JSON of a batch of calls with named params; the ids are 0, 1, ... in order."""
    batch = [
        {"jsonrpc": "2.0", "id": index, "method": method, "params": params}
        for index, (method, params) in enumerate(calls)
    ]
    return encode_json(batch).encode("ascii")


BatchAnswer = JsonValue | RpcError


def parse_batch_response(status: int, body: bytes, count: int) -> list[BatchAnswer]:
    """Each call's result, or the ``RpcError`` it got, in call order (pure).

    Raises:
        RpcError: the node refused the whole batch (401, 413, a malformed batch, ...).
        RpcConnectionError: not one JSON-RPC response per call of the batch.
    """
    try:
        message = decode_json(body)
    except ValueError:
        raise RpcConnectionError(f"HTTP {status}: the body is not JSON") from None
    if isinstance(message, dict):
        _result_of(status, message)  # a refusal of the whole batch raises here
    if not isinstance(message, list) or len(message) != count:
        raise RpcConnectionError(f"HTTP {status}: expected {count} answers to the batch")
    by_id = {item.get("id"): item for item in message if isinstance(item, dict)}
    if len(by_id) != count or any(index not in by_id for index in range(count)):
        raise RpcConnectionError(f"HTTP {status}: the answers' ids are not those of the calls")
    answers: list[BatchAnswer] = []
    for index in range(count):
        try:
            answers.append(_result_of(status, by_id[index]))
        except RpcError as error:
            answers.append(error)
    return answers


def _headers(endpoint: Endpoint, token: str, body: bytes) -> list[tuple[str, str]]:
    return [
        ("host", endpoint.authority),
        ("authorization", f"Bearer {token}"),
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("connection", "close"),
    ]


class RpcClient:
    """Calls the node over HTTP (one connection per call) and reads its notifications.

    Args:
        url: the server's URL, ``http://host:port``.
        token: the node's RPC token.
        timeout_ms: the longest a call may take, connection included.
    """

    def __init__(
        self, url: str, token: str, *, timeout_ms: int = constants.rpc_client_timeout_ms
    ) -> None:
        self._endpoint = Endpoint.parse(url)
        self._token = token
        self._timeout_s = timeout_ms / 1000
        self._ids = itertools.count(1)

    async def call(self, method: str, /, **params: JsonValue) -> JsonValue:
        """Call ``method`` with named params and return its result.

        Raises:
            RpcError: the node answered with an error.
            RpcConnectionError: no answer in time, or not a JSON-RPC answer.
        """
        body = request_body(next(self._ids), method, params)
        try:
            with trio.fail_after(self._timeout_s):
                status, answer = await self._post(body)
        except trio.TooSlowError:
            raise RpcConnectionError(f"{method}: no answer within {self._timeout_s} s") from None
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as error:
            raise RpcConnectionError(f"{method}: {error}") from error
        return parse_response(status, answer)

    def notifications(self, names: Iterable[str] | None = None) -> NotificationStream:
        """A WebSocket subscription: ``async with client.notifications() as stream``.

        Args:
            names: the notification names wanted; ``None`` for all.
        """
        return NotificationStream(self._endpoint, self._token, names, timeout_s=self._timeout_s)

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        stream = await trio.open_tcp_stream(self._endpoint.host, self._endpoint.port)
        async with stream:
            connection = h11.Connection(h11.CLIENT)
            headers = _headers(self._endpoint, self._token, body)
            request = connection.send(h11.Request(method="POST", target="/", headers=headers))
            await stream.send_all(
                (request or b"")
                + (connection.send(h11.Data(data=body)) or b"")
                + (connection.send(h11.EndOfMessage()) or b"")
            )
            return await _read_response(stream, connection)


async def _read_response(
    stream: trio.SocketStream, connection: h11.Connection
) -> tuple[int, bytes]:
    status = 0
    chunks: list[bytes] = []
    size = 0
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(constants.rpc_read_chunk_bytes))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > constants.rpc_response_bytes_max:
                raise RpcConnectionError(
                    f"response larger than {constants.rpc_response_bytes_max} bytes"
                )
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return status, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed):
            raise RpcConnectionError("the node closed the connection before answering")


class NotificationStream:
    """Notifications from one WebSocket subscription, in the order the node sent them.

    Iteration ends when the node closes the socket; ``close_code`` and
    ``close_reason`` then say why (1008: this subscriber fell behind and was dropped).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        token: str,
        names: Iterable[str] | None,
        *,
        timeout_s: float,
    ) -> None:
        self._endpoint = endpoint
        self._token = token
        self._target = "/ws" if names is None else "/ws?names=" + quote(",".join(names))
        self._timeout_s = timeout_s
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._stream: trio.SocketStream | None = None
        self._pending: deque[Notification] = deque()
        self._fragments: list[str] = []
        self._fragments_size = 0
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def __aenter__(self) -> NotificationStream:
        connected = False
        try:
            with trio.fail_after(self._timeout_s):
                await self._connect()
            connected = True
        except trio.TooSlowError:
            raise RpcConnectionError(f"WebSocket: no answer within {self._timeout_s} s") from None
        except (OSError, trio.BrokenResourceError) as error:
            raise RpcConnectionError(f"WebSocket: {error}") from error
        finally:
            if not connected:
                await self._abort()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stream is not None and self._ws.state is ConnectionState.OPEN:
            with trio.move_on_after(_CLOSE_TIMEOUT_S):
                # The node may be gone already.
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._stream.send_all(self._ws.send(CloseConnection(_CLOSE_NORMAL)))
        await self._abort()

    def __aiter__(self) -> NotificationStream:
        return self

    async def __anext__(self) -> Notification:
        while not self._pending:
            if self.close_code is not None:
                raise StopAsyncIteration
            await self._receive()
        return self._pending.popleft()

    async def _abort(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    async def _connect(self) -> None:
        self._stream = await trio.open_tcp_stream(self._endpoint.host, self._endpoint.port)
        authorization = [(b"authorization", f"Bearer {self._token}".encode())]
        request = Request(
            host=self._endpoint.authority, target=self._target, extra_headers=authorization
        )
        await self._stream.send_all(self._ws.send(request))
        reject_status = 0
        reject_body: list[bytes] = []
        while True:
            data = await self._stream.receive_some(constants.rpc_read_chunk_bytes)
            if not data:
                raise RpcConnectionError("WebSocket: the node closed the connection")
            self._ws.receive_data(data)
            for event in self._ws.events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    reject_status = event.status_code
                    if not event.has_body:
                        raise RpcConnectionError(f"WebSocket refused: HTTP {reject_status}")
                elif isinstance(event, RejectData):
                    reject_body.append(bytes(event.data))
                    if event.body_finished:
                        parse_response(reject_status, b"".join(reject_body))
                        raise RpcConnectionError(f"WebSocket refused: HTTP {reject_status}")

    async def _receive(self) -> None:
        assert self._stream is not None, "use the stream inside `async with`"
        data = await self._stream.receive_some(constants.rpc_read_chunk_bytes)
        if not data:
            self.close_code, self.close_reason = _CLOSE_ABNORMAL, "connection lost"
            return
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, TextMessage):
                self._take_fragment(event.data, finished=event.message_finished)
            elif isinstance(event, Ping):
                await self._stream.send_all(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.close_code, self.close_reason = event.code, event.reason
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    await self._stream.send_all(self._ws.send(event.response()))

    def _take_fragment(self, text: str, *, finished: bool) -> None:
        self._fragments.append(text)
        self._fragments_size += len(text)
        if self._fragments_size > constants.rpc_notification_bytes_max:
            limit = constants.rpc_notification_bytes_max
            raise RpcConnectionError(f"notification larger than {limit} bytes")
        if not finished:
            return
        message = decode_json("".join(self._fragments))
        self._fragments.clear()
        self._fragments_size = 0
        if not isinstance(message, dict):
            raise RpcConnectionError("notification is not a JSON object")
        method, params = message.get("method"), message.get("params")
        if not isinstance(method, str) or not isinstance(params, dict):
            raise RpcConnectionError("notification lacks a method name or params object")
        self._pending.append(Notification(method, params))


class RpcSyncClient:
    """A blocking client for the command line (plain ``http.client``).

    Args:
        url: the server's URL, ``http://host:port``.
        token: the node's RPC token.
        timeout_ms: the longest a call may take.
    """

    def __init__(
        self, url: str, token: str, *, timeout_ms: int = constants.rpc_client_timeout_ms
    ) -> None:
        self._endpoint = Endpoint.parse(url)
        self._token = token
        self._timeout_s = timeout_ms / 1000
        self._ids = itertools.count(1)

    def call(self, method: str, /, **params: JsonValue) -> JsonValue:
        """Call ``method`` with named params and return its result.

        Raises:
            RpcError: the node answered with an error.
            RpcConnectionError: the node is unreachable or did not answer JSON-RPC.
        """
        body = request_body(next(self._ids), method, params)
        return parse_response(*self._post(body, method))

    def call_batch(self, calls: Sequence[tuple[str, dict[str, JsonValue]]]) -> list[BatchAnswer]:
        """Call ``(method, params)`` pairs in one JSON-RPC batch, which the node answers
        concurrently; each call's result, or the ``RpcError`` it got, in order.

        Raises:
            RpcError: the node refused the whole batch.
            RpcConnectionError: the node is unreachable or did not answer every call.
        """
        body = batch_request_body(calls)
        return parse_batch_response(*self._post(body, f"batch of {len(calls)}"), len(calls))

    def _post(self, body: bytes, what: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(
            self._endpoint.host, self._endpoint.port, timeout=self._timeout_s
        )
        try:
            connection.request("POST", "/", body, dict(_headers(self._endpoint, self._token, body)))
            response = connection.getresponse()
            answer = response.read(constants.rpc_response_bytes_max + 1)
        except (OSError, http.client.HTTPException) as error:
            raise RpcConnectionError(f"{what}: {error}") from error
        finally:
            connection.close()
        if len(answer) > constants.rpc_response_bytes_max:
            raise RpcConnectionError(
                f"response larger than {constants.rpc_response_bytes_max} bytes"
            )
        return response.status, answer
