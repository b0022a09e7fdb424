"""Many clients at once; slow, stuck and idle clients do not hold up the others."""

from __future__ import annotations

import trio

from node.rpc import ErrorCode, RpcClient
from tests.rpc.conftest import READ_TIMEOUT_MS, Served, serve
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
    assert READ_TIMEOUT_MS <= elapsed_ms < READ_TIMEOUT_MS + 2_000


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


async def test_connection_limit_refuses_with_503(nursery: trio.Nursery) -> None:
    limit = 4
    served = await serve(nursery, connections_max=limit, read_timeout_ms=10_000)
    held = [await open_raw(served.url) for _ in range(limit)]
    for stream in held:
        await stream.send_all(b"POST / HTTP/1.1\r\n")  # a request that never ends
    await wait_until(lambda: served.server.connection_count == limit)
    response = await exchange(served.url, b"POST / HTTP/1.1\r\n\r\n")
    assert response.status == 503
    assert response.json()["error"]["code"] == ErrorCode.OVERLOADED  # type: ignore[index]
    for stream in held:
        await stream.aclose()
    await wait_until(lambda: served.server.connection_count == 0)
    assert await served.client.call("echo", text="room again") == "room again"
