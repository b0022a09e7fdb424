"""The Prometheus endpoint: ``GET /metrics`` over HTTP/1.1 (h11), served from trio.

Served in the node's trio thread, so a scrape reads the engine's state between two
steps, never in the middle of one. One request per connection; a bounded number
of connections, each with a deadline.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final, NoReturn

import h11
import trio
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from node.core.constants import (
    metrics_connections_max,
    metrics_header_bytes_max,
    metrics_request_timeout_ms,
)
from node.core.errors import InvalidValueError
from node.metrics._metrics import Metrics

if TYPE_CHECKING:
    from trio_typing import TaskStatus

PATH: Final = "/metrics"
_ADDRESS: Final = re.compile(r"(?P<host>[A-Za-z0-9.\-]+):(?P<port>[0-9]{1,5})")
_READ_BYTES: Final = 4096


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv4 address or a name; port 0: any free one) as ``(host, port)``.

    Raises:
        InvalidValueError: another form, or a port above 65535.
    """
    match = _ADDRESS.fullmatch(text)
    if match is None or int(match["port"]) > 65535:
        raise InvalidValueError("--metrics", f"{text!r}: expected HOST:PORT")
    return match["host"], int(match["port"])


class MetricsServer:
    """Serves ``metrics`` at ``http://HOST:PORT/metrics``.

    Args:
        metrics: what to serve.
        host: the address to listen on.
        port: the port (0: any free one).
    """

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        assert 0 <= port <= 65535
        self.metrics = metrics
        self.host = host
        self.port = port
        self._limiter = trio.CapacityLimiter(metrics_connections_max)

    async def run(self, *, task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> NoReturn:
        """Listen, report the endpoint's URL, serve until cancelled.

        Raises:
            OSError: the address cannot be listened on.
        """
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        port = listeners[0].socket.getsockname()[1]
        task_status.started(f"http://{self.host}:{port}{PATH}")
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            self._limiter.acquire_nowait()
        except trio.WouldBlock:
            await stream.aclose()  # enough scrapes at once: the scraper tries again
            return
        try:
            with trio.move_on_after(metrics_request_timeout_ms / 1000):
                await self._answer(stream)
        except (trio.BrokenResourceError, h11.ProtocolError):
            pass  # the scraper went away or spoke nonsense: nothing to answer
        finally:
            self._limiter.release()
            await trio.aclose_forcefully(stream)

    async def _answer(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=metrics_header_bytes_max)
        request = await _read_request(stream, connection)
        if request is None:
            return
        if request.method not in (b"GET", b"HEAD"):
            status, body, content_type = 405, b"only GET\n", "text/plain; charset=utf-8"
        elif request.target.split(b"?")[0] != PATH.encode():
            status, body, content_type = 404, b"see /metrics\n", "text/plain; charset=utf-8"
        else:
            status, body, content_type = (
                200,
                generate_latest(self.metrics.registry),
                CONTENT_TYPE_LATEST,
            )
        headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ]
        data = connection.send(h11.Response(status_code=status, headers=headers)) or b""
        if request.method != b"HEAD":  # a HEAD's answer has the headers only
            data += connection.send(h11.Data(data=body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)


async def _read_request(
    stream: trio.SocketStream, connection: h11.Connection
) -> h11.Request | None:
    """The request's head (its body, if any, is not read), or None if the client left."""
    while True:
        event = connection.next_event()
        if isinstance(event, h11.Request):
            return event
        if event is h11.NEED_DATA:
            data = await stream.receive_some(_READ_BYTES)
            connection.receive_data(data)
            if not data:
                return None
        elif isinstance(event, h11.ConnectionClosed):
            return None
