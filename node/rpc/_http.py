"""HTTP/1.1 plumbing over h11: reading one request, answering, refusing politely."""

from __future__ import annotations

import http
from collections.abc import Sequence

import h11
import trio

from node.core import constants
from node.rpc._dispatch import error_body
from node.rpc._errors import ErrorCode, RpcError

HeaderList = Sequence[tuple[str, str]]


class HttpRefusal(Exception):
    """The request is refused with an HTTP error status and a JSON-RPC error body."""

    def __init__(self, status: int, code: int, message: str, headers: HeaderList = ()) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.error = RpcError(code, message)
        self.headers = headers


def refusal_bytes(refusal: HttpRefusal) -> bytes:
    """A complete ``Connection: close`` response for a refusal.

    Written by hand rather than through h11: a refusal may come before h11 has
    seen a whole request (a timeout, a flood of headers), when h11 may not answer.
    """
    body = error_body(None, refusal.error).encode("ascii")
    reason = http.HTTPStatus(refusal.status).phrase
    lines = [
        f"HTTP/1.1 {refusal.status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in refusal.headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


async def refuse(
    stream: trio.SocketStream,
    refusal: HttpRefusal,
    *,
    write_timeout_ms: int,
    linger_ms: int = constants.rpc_linger_ms,
) -> None:
    """Send a refusal, then read and discard what the client still sends for a moment.

    Closing with unread input makes the kernel reset the connection, and the
    client could lose the response; so we shut our side and drain first.
    """
    with trio.move_on_after(write_timeout_ms / 1000):
        await stream.send_all(refusal_bytes(refusal))
        await stream.send_eof()
    with trio.move_on_after(linger_ms / 1000):
        while await stream.receive_some(constants.rpc_read_chunk_bytes):
            pass


def header(request: h11.Request, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case), if present."""
    for key, value in request.headers:
        if key == name:
            return bytes(value)
    return None


class HttpReader:
    """Pulls h11 events off a stream, counting the bytes of the current request."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.connection = h11.Connection(
            h11.SERVER, max_incomplete_event_size=constants.rpc_header_bytes_max
        )
        self.bytes_this_request = 0

    async def next_event(self) -> object:
        """The next h11 event, reading from the socket as needed.

        Raises:
            HttpRefusal: the request is malformed or its head is too large.
        """
        while True:
            try:
                event = self.connection.next_event()
            except h11.RemoteProtocolError as error:
                status = error.error_status_hint
                raise HttpRefusal(status, ErrorCode.INVALID_REQUEST, f"bad HTTP: {error}") from None
            if event is not h11.NEED_DATA:
                return event
            data = await self.stream.receive_some(self._read_size())
            self.bytes_this_request += len(data)
            self.connection.receive_data(data)

    async def wait_for_request(self) -> bool:
        """Wait for the first bytes of the next request (they may be buffered already).

        Returns:
            ``False`` if the client closed the connection instead.
        """
        buffered, closed = self.connection.trailing_data
        if buffered or closed:
            return True  # next_event() handles both
        data = await self.stream.receive_some(self._read_size())
        self.bytes_this_request += len(data)
        self.connection.receive_data(data)
        return bool(data)

    def _read_size(self) -> int:
        # h11 bounds only an incomplete head: read no further than the bound until the
        # head is complete, so a large head that arrives at once is refused as well.
        if self.connection.their_state is h11.IDLE:
            return max(1, constants.rpc_header_bytes_max + 1 - self.bytes_this_request)
        return constants.rpc_read_chunk_bytes

    async def read_body(self, request: h11.Request) -> bytes | None:
        """The whole body of ``request``; ``None`` if the client went away.

        Raises:
            HttpRefusal: 413 when the body is larger than ``rpc_request_bytes_max``.
        """
        limit = constants.rpc_request_bytes_max
        too_large = HttpRefusal(
            413, ErrorCode.INVALID_REQUEST, f"request body larger than {limit} bytes"
        )
        length = header(request, b"content-length")
        # h11 has checked that the length is all digits; a long one is refused unparsed.
        if length is not None and (len(length) > len(str(limit)) or int(length) > limit):
            raise too_large
        if self.connection.client_is_waiting_for_100_continue:
            go_on = self.connection.send(h11.InformationalResponse(status_code=100, headers=[]))
            await self.stream.send_all(go_on or b"")
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise too_large
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                return None

    async def respond(
        self,
        status: int,
        body: bytes,
        *,
        write_timeout_ms: int,
        content_type: str,
        headers: HeaderList = (),
    ) -> None:
        """Send a whole response through h11, with ``headers`` besides its length and type.

        Raises:
            trio.TooSlowError: the client did not take it within the timeout.
        """
        fields = list(headers)
        if body:  # a 204 carries neither a body nor a length
            fields += [("content-length", str(len(body))), ("content-type", content_type)]
        payload = self.connection.send(h11.Response(status_code=status, headers=fields))
        assert payload is not None
        if body:
            payload += self.connection.send(h11.Data(data=body)) or b""
        payload += self.connection.send(h11.EndOfMessage()) or b""
        with trio.fail_after(write_timeout_ms / 1000):
            await self.stream.send_all(payload)

    def next_cycle(self) -> bool:
        """Prepare for the next request on this connection; ``False`` if it must close."""
        if self.connection.our_state is h11.DONE and self.connection.their_state is h11.DONE:
            self.connection.start_next_cycle()
            self.bytes_this_request = len(self.connection.trailing_data[0])  # pipelined
            return True
        return False
