"""Many clients at once; slow, stuck and idle clients do not hold up the others."""

from __future__ import annotations

import contextlib

import trio

from node.core import constants
from node.rpc import ErrorCode, RpcClient
from tests.rpc.conftest import HEADER_TIMEOUT_MS, Served, serve
from tests.rpc.rpc_support import (
    SLOW_METHOD_TIMEOUT_MS,
    exchange,
    open_raw,
    parse_http_response,
    wait_until,
)


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    chunks = []
    while chunk := await stream.receive_some(65536):
        chunks.append(chunk)
    return b"".join(chunks)


async def test_many_clients_at_once(served: Served) -> None:
    clients = 64
    results: dict[int, object] = {}

    async def one(index: int) -> None:
        client = RpcClient(served.url, served.token, timeout_ms=10_000)
        results[index] = await client.call("add", a=index, b=str(index))

    async with trio.open_nursery() as nursery:
        for index in range(clients):
            nursery.start_soon(one, index)
    assert results == {index: str(2 * index) for index in range(clients)}
    assert served.server.connection_count == 0


async def test_calls_run_concurrently(served: Served) -> None:
    sleep_ms = SLOW_METHOD_TIMEOUT_MS // 3
    calls = 20
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(calls):
            nursery.start_soon(lambda: served.client.call("sleep_for", ms=sleep_ms))
    elapsed_ms = (trio.current_time() - start) * 1000
    # One after another would take calls * sleep_ms.
    assert elapsed_ms < calls * sleep_ms / 4


async def test_a_stuck_handler_does_not_block_other_calls(served: Served) -> None:
    answers: list[object] = []

    async def stuck() -> None:
        answers.append(await served.client.call("stuck"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stuck)
        await wait_until(lambda: served.calls.stuck_calls == 1)
        for index in range(10):
            assert await served.client.call("echo", text=str(index)) == str(index)
        assert answers == []
        served.calls.release.set()
    assert answers == ["released"]


async def test_slowloris_client_is_cut_off_and_others_are_served(served: Served) -> None:
    stream = await open_raw(served.url)
    request = f"POST / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {served.token}\r\n".encode()
    received: list[bytes] = []

    async def trickle() -> None:
        async with stream:
            try:
                for byte in request:
                    await stream.send_all(bytes([byte]))
                    await trio.sleep(0.02)
            except trio.BrokenResourceError:
                pass  # cut off, as intended
            received.append(await read_until_closed(stream))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        for index in range(10):
            assert await served.client.call("echo", text=str(index)) == str(index)
    elapsed_ms = (trio.current_time() - start) * 1000
    response = parse_http_response(received[0])
    assert response.status == 408
    assert HEADER_TIMEOUT_MS <= elapsed_ms < HEADER_TIMEOUT_MS + 2_000


async def test_slow_body_is_cut_off(served: Served) -> None:
    head = (
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n"
        f"authorization: Bearer {served.token}\r\n\r\n"
    ).encode()
    stream = await open_raw(served.url)
    async with stream:
        await stream.send_all(head + b"[1,")
        with trio.fail_after(5):
            response = parse_http_response(await read_until_closed(stream))
    assert response.status == 408


async def test_idle_connection_is_closed_silently(served: Served) -> None:
    stream = await open_raw(served.url)
    async with stream:
        with trio.fail_after(5):
            assert await read_until_closed(stream) == b""


def authenticated_head(token: str) -> bytes:
    """An authenticated POST head whose body never comes: the connection holds its slot."""
    return (
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n"
        f"authorization: Bearer {token}\r\n\r\n"
    ).encode()


async def test_connection_limit_refuses_with_503(nursery: trio.Nursery) -> None:
    limit = 4
    served = await serve(
        nursery, connections_max=limit, unauthenticated_connections_max=2, read_timeout_ms=10_000
    )
    held = []
    for _ in range(limit):
        held.append(await open_raw(served.url))
        await held[-1].send_all(authenticated_head(served.token))
        await wait_until(lambda: served.server.connection_statistics().unauthenticated == 0)
    assert served.server.connection_count == limit
    # Every slot is an authenticated client's: a newcomer is refused, nobody is evicted.
    response = await exchange(served.url, b"POST / HTTP/1.1\r\n\r\n")
    assert response.status == 503
    assert response.json()["error"]["code"] == ErrorCode.OVERLOADED  # type: ignore[index]
    statistics = served.server.connection_statistics()
    assert (statistics.refused_total, statistics.evicted_total) == (1, 0)
    for stream in held:
        await stream.aclose()
    await wait_until(lambda: served.server.connection_count == 0)
    assert await served.client.call("echo", text="room again") == "room again"


async def test_silent_connections_cannot_shut_out_an_authenticated_client(
    nursery: trio.Nursery,
) -> None:
    limit = 8
    served = await serve(
        nursery,
        connections_max=limit,
        unauthenticated_connections_max=3,
        read_timeout_ms=10_000,
        header_timeout_ms=10_000,  # only eviction frees the silent ones' slots
    )
    # An authenticated client already connected keeps its slot through the flood.
    keeper = await open_raw(served.url)
    await keeper.send_all(authenticated_head(served.token))
    await wait_until(lambda: served.server.connection_statistics().unauthenticated == 0)
    silent = [await open_raw(served.url) for _ in range(5 * limit)]
    await wait_until(lambda: served.server.connection_statistics().evicted_total >= 4 * limit)
    statistics = served.server.connection_statistics()
    assert statistics.unauthenticated == 3
    assert statistics.connections == 4  # the keeper and the three newest silent ones
    # A new client's call goes through: it evicts the oldest silent connection.
    for index in range(3):
        assert await served.client.call("echo", text=str(index)) == str(index)
    # The oldest silent connections were closed, the newest still hold their slots.
    with trio.fail_after(5):
        assert await read_until_closed(silent[0]) == b""
    assert served.server.connection_statistics().refused_total == 0
    await keeper.send_all(b"[" + b" " * 98 + b"]")  # the keeper's body: an empty batch
    with trio.fail_after(5):
        response = await keeper.receive_some(65536)
    assert response.startswith(b"HTTP/1.1 200")
    for stream in [keeper, *silent]:
        await stream.aclose()
    await wait_until(lambda: served.server.connection_count == 0)


async def test_many_silent_connections_at_the_default_limits(nursery: trio.Nursery) -> None:
    # The production bounds: more silent connections than there are slots at all.
    served = await serve(
        nursery,
        connections_max=constants.rpc_connections_max,
        unauthenticated_connections_max=constants.rpc_unauthenticated_connections_max,
        read_timeout_ms=10_000,
        header_timeout_ms=10_000,
    )
    silent = [await open_raw(served.url) for _ in range(constants.rpc_connections_max + 16)]
    await wait_until(
        lambda: served.server.connection_statistics().unauthenticated
        == constants.rpc_unauthenticated_connections_max
    )
    with trio.fail_after(5):
        assert await served.client.call("echo", text="through") == "through"
    assert served.server.connection_statistics().refused_total == 0
    for stream in silent:
        await stream.aclose()


async def test_a_slowly_dribbled_head_is_cut_at_the_header_deadline(
    nursery: trio.Nursery,
) -> None:
    header_timeout_ms = 250
    served = await serve(nursery, header_timeout_ms=header_timeout_ms, read_timeout_ms=10_000)
    stream = await open_raw(served.url)
    head = f"POST / HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {served.token}\r\n"

    async def dribble() -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            for byte in head.encode():  # one byte every 20 ms: 1.8 s for the whole head
                await stream.send_all(bytes([byte]))
                await trio.sleep(0.02)

    start = trio.current_time()
    async with stream:
        async with trio.open_nursery() as dribbling:
            dribbling.start_soon(dribble)
            with trio.fail_after(5):
                first = await stream.receive_some(65536)
            cut_ms = (trio.current_time() - start) * 1000
            dribbling.cancel_scope.cancel()
        await stream.send_eof()  # ends the server's linger at once
        with trio.fail_after(5):
            received = first + await read_until_closed(stream)
    response = parse_http_response(received)
    assert response.status == 408
    assert "request headers not received within 250 ms" in response.body.decode()
    # Cut at the header deadline, long before the read timeout (10 s) would have.
    assert header_timeout_ms <= cut_ms < header_timeout_ms + 1_500


async def test_a_keep_alive_connection_may_idle_then_must_send_its_head_in_time(
    nursery: trio.Nursery,
) -> None:
    served = await serve(nursery, header_timeout_ms=100, read_timeout_ms=2_000)
    body = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"text":"a"}}'
    request = (
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nauthorization: Bearer {served.token}\r\n\r\n"
    ).encode() + body
    stream = await open_raw(served.url)
    async with stream:
        await stream.send_all(request)
        assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
        await trio.sleep(0.15)  # idle past the header deadline, within the read timeout
        await stream.send_all(request)
        assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
        await stream.send_all(b"POST / HTTP/1.1\r\n")  # then a head that stalls
        with trio.fail_after(5):
            stalled = parse_http_response(await read_until_closed(stream))
    assert stalled.status == 408
