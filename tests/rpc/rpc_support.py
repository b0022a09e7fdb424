"""Shared pieces of the RPC tests: a registry of test methods and raw HTTP over a socket."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import trio

from node.rpc import (
    ADDRESS,
    BYTES32,
    STRING,
    UINT64,
    UINT256,
    ErrorCode,
    JsonValue,
    MethodRegistry,
    Param,
    ParamsSpec,
    RpcError,
    list_of,
)

SLOW_METHOD_TIMEOUT_MS = 150


def host_port(url: str) -> tuple[str, int]:
    """Host and port of the server's ``http://host:port`` URL."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def open_raw(url: str) -> trio.SocketStream:
    """A plain TCP connection to the server."""
    return await trio.open_tcp_stream(*host_port(url))


@dataclass
class Calls:
    """What the test handlers saw, for assertions."""

    noted: list[str] = field(default_factory=list)
    release: trio.Event = field(default_factory=trio.Event)
    stuck_calls: int = 0


def build_registry(calls: Calls) -> MethodRegistry:
    """A registry of small handlers, one per behaviour the tests need."""
    registry = MethodRegistry()

    async def echo(text: str) -> str:
        return text

    async def add(a: int, b: int) -> str:
        return str(a + b)

    async def describe(address: str, channel_id: bytes, amounts: list[int]) -> JsonValue:
        return {"address": address, "channel_id": "0x" + channel_id.hex(), "total": sum(amounts)}

    async def note(text: str) -> None:
        calls.noted.append(text)

    async def crash() -> None:
        raise ValueError("secret internal detail")

    async def missing_channel(channel_id: bytes) -> None:
        raise RpcError(ErrorCode.CHANNEL_NOT_FOUND, "channel not found", {"id": channel_id.hex()})

    async def unserialisable() -> JsonValue:
        return {"value": object()}  # type: ignore[dict-item]

    async def stuck() -> str:
        calls.stuck_calls += 1
        await calls.release.wait()
        return "released"

    async def sleep_for(ms: int) -> int:
        await trio.sleep(ms / 1000)
        return ms

    registry.register("echo", echo, params=[Param("text", STRING)])
    registry.register("add", add, params=ParamsSpec(Param("a", UINT256), Param("b", UINT256)))
    registry.register(
        "describe",
        describe,
        params=[
            Param("address", ADDRESS),
            Param("channel_id", BYTES32),
            Param("amounts", list_of(UINT256, items_max=4), required=False, default=[]),
        ],
    )
    registry.register("note", note, params=[Param("text", STRING)])
    registry.register("crash", crash)
    registry.register("missing_channel", missing_channel, params=[Param("channel_id", BYTES32)])
    registry.register("unserialisable", unserialisable)
    registry.register("stuck", stuck)
    registry.register(
        "sleep_for", sleep_for, params=[Param("ms", UINT64)], timeout_ms=SLOW_METHOD_TIMEOUT_MS
    )
    return registry


async def wait_until(condition: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    """Poll a condition on server state that no event announces."""
    with trio.fail_after(timeout_s):
        for _ in itertools.count():
            if condition():
                return
            await trio.sleep(0.005)


@dataclass(frozen=True)
class RawResponse:
    """One HTTP response as read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def http_request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    token: str | None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A raw HTTP/1.1 request that asks the server to close afterwards."""
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1", "connection: close"]
    if token is not None:
        lines.append(f"authorization: Bearer {token}")
    if method == "POST":
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_http_responses(raw: bytes) -> list[RawResponse]:
    """Every response in ``raw``, in order (several on a keep-alive connection)."""
    responses = []
    while raw:
        response, raw = _parse_one(raw)
        responses.append(response)
    return responses


def parse_http_response(raw: bytes) -> RawResponse:
    """The one response in ``raw``."""
    response, rest = _parse_one(raw)
    assert rest == b"", f"bytes after the response: {rest[:200]!r}"
    return response


def _parse_one(raw: bytes) -> tuple[RawResponse, bytes]:
    head, separator, body = raw.partition(b"\r\n\r\n")
    assert separator, f"no complete response head in {raw[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    assert len(body) >= length, (len(body), length)
    return RawResponse(int(status_line.split(" ")[1]), headers, body[:length]), body[length:]


async def exchange(url: str, data: bytes, *, timeout_s: float = 5.0) -> RawResponse:
    """Send raw bytes, read until the server closes, parse the one response."""
    return parse_http_response(await exchange_bytes(url, data, timeout_s=timeout_s))


async def exchange_bytes(url: str, data: bytes, *, timeout_s: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes."""
    with trio.fail_after(timeout_s):
        stream = await open_raw(url)
        async with stream:
            await stream.send_all(data)
            chunks = []
            while chunk := await stream.receive_some(65536):
                chunks.append(chunk)
    return b"".join(chunks)


async def post(url: str, body: bytes, *, token: str | None) -> RawResponse:
    """POST a raw body to / and read the response."""
    return await exchange(url, http_request("POST", "/", body, token=token))


def websocket_upgrade(path: str, *, token: str | None) -> bytes:
    """A raw WebSocket upgrade request."""
    return http_request(
        "GET",
        path,
        token=token,
        headers={
            "upgrade": "websocket",
            "connection": "Upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
        },
    ).replace(b"connection: close\r\n", b"")
