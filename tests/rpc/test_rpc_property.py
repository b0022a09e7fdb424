"""Any body, JSON or not: the server never fails and always answers well-formed JSON-RPC,
or nothing for notifications. The server runs in its own thread for the whole module."""

from __future__ import annotations

import http.client
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.rpc import (
    ErrorCode,
    JsonValue,
    RpcError,
    RpcServer,
    RpcSyncClient,
    generate_rpc_token,
    node_version,
)
from tests.rpc.rpc_support import Calls, build_registry, host_port

# The test registry's methods, less those that wait on purpose.
METHODS = ["version", "methods", "add", "echo", "describe", "note", "crash", "missing_channel"]
METHODS += ["unserialisable"]


@dataclass(frozen=True)
class ThreadedServer:
    url: str
    token: str


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[ThreadedServer]:
    token = generate_rpc_token()
    started: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def serve() -> None:
        server = RpcServer(build_registry(Calls()), token, request_timeout_ms=2_000)
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                url = await nursery.start(server.run)
                started.put((url, trio.lowlevel.current_trio_token(), scope))

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    url, trio_token, scope = started.get(timeout=10)
    yield ThreadedServer(url, token)
    trio.from_thread.run_sync(scope.cancel, trio_token=trio_token)
    thread.join(timeout=10)
    assert not thread.is_alive()


def post(server: ThreadedServer, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*host_port(server.url), timeout=10)
    try:
        headers = {"authorization": f"Bearer {server.token}", "content-type": "application/json"}
        connection.request("POST", "/", body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
ids = st.none() | st.integers() | st.text(max_size=10) | json_values
requests = st.fixed_dictionaries(
    {"method": st.sampled_from(METHODS) | st.text(max_size=12) | json_values},
    optional={
        "jsonrpc": st.just("2.0") | json_values,
        "id": ids,
        "params": json_values,
    },
)
messages = requests | st.lists(requests | json_values, max_size=6) | json_values


def check_response(response: object) -> None:
    assert isinstance(response, dict)
    assert response["jsonrpc"] == "2.0"
    assert "id" in response
    assert isinstance(response["id"], str | int | None)
    assert ("result" in response) != ("error" in response)
    if "error" in response:
        error = response["error"]
        assert isinstance(error["code"], int)
        assert isinstance(error["message"], str)
        assert "Traceback" not in error["message"]


def is_notification(item: object) -> bool:
    return isinstance(item, dict) and "id" not in item


def check_exchange(message: object, status: int, body: bytes) -> None:
    if status == 204:
        assert body == b""
        items = message if isinstance(message, list) else [message]
        assert items
        assert all(is_notification(item) for item in items)
        return
    assert status == 200
    answer = json.loads(body)
    if isinstance(message, list) and message and isinstance(answer, list):
        assert 0 < len(answer) <= len(message)
        for response in answer:
            check_response(response)
        return
    check_response(answer)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages)
def test_any_json_gets_a_well_formed_answer(
    threaded_server: ThreadedServer, message: object
) -> None:
    status, body = post(threaded_server, json.dumps(message).encode())
    check_exchange(message, status, body)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=256))
def test_any_bytes_get_a_well_formed_answer(threaded_server: ThreadedServer, body: bytes) -> None:
    status, answer = post(threaded_server, body)
    assert status in {200, 204}
    if status == 200:
        parsed = json.loads(answer)
        for response in parsed if isinstance(parsed, list) else [parsed]:
            check_response(response)


def test_server_still_serves_after_the_examples(threaded_server: ThreadedServer) -> None:
    client = RpcSyncClient(threaded_server.url, threaded_server.token, timeout_ms=5_000)
    assert client.call("version") == node_version()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), inner, max_size=4),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@given(JSON_VALUES, st.booleans())
def test_nesting_depth_is_the_depth_of_the_value(value: object, ascii_only: bool) -> None:
    from node.rpc._json import _nesting_depth

    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _nesting_depth(raw) == _depth(value)


@given(st.lists(st.sampled_from(["add", "missing_channel", "nonexistent"]), min_size=1, max_size=8))
def test_a_sync_batch_answers_each_call_in_order(
    threaded_server: ThreadedServer, methods: list[str]
) -> None:
    client = RpcSyncClient(threaded_server.url, threaded_server.token, timeout_ms=5_000)
    params: dict[str, dict[str, JsonValue]] = {
        "missing_channel": {"channel_id": "0x" + "ab" * 32},
        "nonexistent": {},
    }
    calls = [
        (method, {"a": index, "b": 1} if method == "add" else params[method])
        for index, method in enumerate(methods)
    ]
    answers = client.call_batch(calls)
    assert len(answers) == len(calls)
    codes = {
        "missing_channel": ErrorCode.CHANNEL_NOT_FOUND,
        "nonexistent": ErrorCode.METHOD_NOT_FOUND,
    }
    for index, (method, answer) in enumerate(zip(methods, answers, strict=True)):
        if method == "add":
            assert answer == str(index + 1)
        else:
            assert isinstance(answer, RpcError)
            assert answer.code == codes[method]


def test_a_sync_batch_refused_whole_raises(threaded_server: ThreadedServer) -> None:
    client = RpcSyncClient(threaded_server.url, "wrong-token", timeout_ms=5_000)
    with pytest.raises(RpcError):
        client.call_batch([("add", {"a": 1, "b": 2})])
