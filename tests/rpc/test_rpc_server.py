"""The JSON-RPC server over real sockets: success paths and every error path."""

from __future__ import annotations

import json
import logging

import pytest
import trio

from node.core import constants
from node.rpc import ErrorCode, RpcClient, RpcError, RpcSyncClient, node_version
from tests.rpc.conftest import Served
from tests.rpc.rpc_support import (
    exchange,
    exchange_bytes,
    http_request,
    open_raw,
    parse_http_response,
    parse_http_responses,
    post,
    websocket_upgrade,
)

ADDRESS = "0x5409ED021D9299bf6814279A6A1411A7e866A631"
CHANNEL_ID = "0x" + "ab" * 32


def call_body(method: str, params: object = None, request_id: object = 1) -> bytes:
    message: dict[str, object] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


def error_of(response: object) -> tuple[object, int, str]:
    assert isinstance(response, dict)
    assert response["jsonrpc"] == "2.0"
    assert "result" not in response
    error = response["error"]
    return response["id"], error["code"], error["message"]


# Success paths.


async def test_version_is_the_installed_version(served: Served) -> None:
    assert await served.client.call("version") == node_version()
    assert node_version().count(".") >= 1


async def test_named_and_positional_params(served: Served) -> None:
    assert await served.client.call("add", a=2**255, b="1") == str(2**255 + 1)
    response = await post(served.url, call_body("add", [40, "2"], "positional"), token=served.token)
    assert response.status == 200
    assert response.json() == {"jsonrpc": "2.0", "id": "positional", "result": "42"}


async def test_typed_params_are_converted(served: Served) -> None:
    result = await served.client.call(
        "describe", address=ADDRESS.lower(), channel_id=CHANNEL_ID, amounts=[1, "2", 3]
    )
    assert result == {"address": ADDRESS, "channel_id": CHANNEL_ID, "total": 6}
    defaulted = await served.client.call("describe", address=ADDRESS, channel_id=CHANNEL_ID)
    assert defaulted == {"address": ADDRESS, "channel_id": CHANNEL_ID, "total": 0}


async def test_methods_lists_registered_methods_and_params(served: Served) -> None:
    methods = await served.client.call("methods")
    assert isinstance(methods, list)
    by_name = {method["name"]: method for method in methods}
    assert {"version", "methods", "add", "describe"} <= set(by_name)
    assert by_name["add"]["params"] == [
        {"name": "a", "type": "uint256", "required": True},
        {"name": "b", "type": "uint256", "required": True},
    ]


async def test_keep_alive_serves_several_requests_on_one_connection(served: Served) -> None:
    first = http_request("POST", "/", call_body("echo", {"text": "one"}, 1), token=served.token)
    second = http_request("POST", "/", call_body("echo", {"text": "two"}, 2), token=served.token)
    keep_alive = first.replace(b"connection: close\r\n", b"")
    raw = await exchange_bytes(served.url, keep_alive + second)
    answers = [response.json() for response in parse_http_responses(raw)]
    assert answers == [
        {"jsonrpc": "2.0", "id": 1, "result": "one"},
        {"jsonrpc": "2.0", "id": 2, "result": "two"},
    ]


async def test_sync_client_calls_the_server(served: Served) -> None:
    client = RpcSyncClient(served.url, served.token, timeout_ms=5_000)
    assert await trio.to_thread.run_sync(lambda: client.call("add", a=1, b=2)) == "3"
    with pytest.raises(RpcError) as raised:
        await trio.to_thread.run_sync(lambda: client.call("nope"))
    assert raised.value.code == ErrorCode.METHOD_NOT_FOUND


# JSON-RPC error paths.


async def test_invalid_json_is_a_parse_error_with_null_id(served: Served) -> None:
    for body in (b"{not json", b'{"jsonrpc": "2.0", "id": 1, "method": "version", "x": NaN}'):
        response = await post(served.url, body, token=served.token)
        assert response.status == 200
        assert error_of(response.json())[:2] == (None, ErrorCode.PARSE_ERROR)


async def test_deep_nesting_is_a_parse_error(served: Served) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    response = await post(served.url, body, token=served.token)
    assert error_of(response.json())[:2] == (None, ErrorCode.PARSE_ERROR)


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        (1, None),
        ("text", None),
        ({"id": 1, "method": "version"}, 1),
        ({"jsonrpc": "1.0", "id": 2, "method": "version"}, 2),
        ({"jsonrpc": "2.0", "id": 3, "method": 7}, 3),
        ({"jsonrpc": "2.0", "id": 4, "method": "version", "params": "x"}, 4),
        ({"jsonrpc": "2.0", "id": [1], "method": "version"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "version"}, None),
        ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, None),
    ],
)
async def test_invalid_requests(served: Served, message: object, expected_id: object) -> None:
    response = await post(served.url, json.dumps(message).encode(), token=served.token)
    assert error_of(response.json())[:2] == (expected_id, ErrorCode.INVALID_REQUEST)


async def test_unknown_method(served: Served) -> None:
    response = await post(served.url, call_body("no_such_method"), token=served.token)
    request_id, code, message = error_of(response.json())
    assert (request_id, code) == (1, ErrorCode.METHOD_NOT_FOUND)
    assert "no_such_method" in message


@pytest.mark.parametrize(
    ("method", "params", "param"),
    [
        ("add", {"a": 1}, "b"),
        ("add", {"a": -1, "b": 1}, "a"),
        ("add", {"a": 1.5, "b": 1}, "a"),
        ("add", {"a": "0x10", "b": 1}, "a"),
        ("add", {"a": 2**256, "b": 1}, "a"),
        ("add", {"a": 1, "b": 2, "c": 3}, "c"),
        ("echo", {"text": 5}, "text"),
        ("describe", {"address": "0x1234", "channel_id": CHANNEL_ID}, "address"),
        ("describe", {"address": ADDRESS.replace("E", "e"), "channel_id": CHANNEL_ID}, "address"),
        ("describe", {"address": ADDRESS, "channel_id": "0xab"}, "channel_id"),
        ("describe", {"address": ADDRESS, "channel_id": "ab" * 32}, "channel_id"),
        (
            "describe",
            {"address": ADDRESS, "channel_id": CHANNEL_ID, "amounts": [1, 2.5]},
            "amounts",
        ),
        ("describe", {"address": ADDRESS, "channel_id": CHANNEL_ID, "amounts": [1] * 5}, "amounts"),
    ],
)
async def test_bad_params_name_the_param(
    served: Served, method: str, params: dict[str, object], param: str
) -> None:
    with pytest.raises(RpcError) as raised:
        await served.client.call(method, **params)  # type: ignore[arg-type]
    assert raised.value.code == ErrorCode.INVALID_PARAMS
    assert repr(param) in raised.value.message
    assert raised.value.data == {"param": param}


async def test_too_many_positional_params(served: Served) -> None:
    response = await post(served.url, call_body("add", [1, 2, 3]), token=served.token)
    request_id, code, message = error_of(response.json())
    assert (request_id, code) == (1, ErrorCode.INVALID_PARAMS)
    assert "at most 2" in message


async def test_handler_crash_is_an_internal_error_and_the_server_goes_on(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="node.rpc"):
        response = await post(served.url, call_body("crash"), token=served.token)
    request_id, code, message = error_of(response.json())
    assert (request_id, code, message) == (1, ErrorCode.INTERNAL_ERROR, "internal error")
    assert b"secret internal detail" not in response.body
    assert b"Traceback" not in response.body
    logged = [record for record in caplog.records if record.exc_info is not None]
    assert logged, "the crash is logged with its traceback"
    assert "secret internal detail" in str(logged[0].exc_info[1])  # type: ignore[index]
    assert await served.client.call("echo", text="still here") == "still here"


async def test_unserialisable_result_is_an_internal_error(served: Served) -> None:
    with pytest.raises(RpcError) as raised:
        await served.client.call("unserialisable")
    assert raised.value.code == ErrorCode.INTERNAL_ERROR
    assert await served.client.call("version") == node_version()


async def test_application_error_reaches_the_client(served: Served) -> None:
    with pytest.raises(RpcError) as raised:
        await served.client.call("missing_channel", channel_id=CHANNEL_ID)
    assert raised.value.code == ErrorCode.CHANNEL_NOT_FOUND
    assert raised.value.message == "channel not found"
    assert raised.value.data == {"id": "ab" * 32}


async def test_handler_timeout(served: Served) -> None:
    with pytest.raises(RpcError) as raised:
        await served.client.call("sleep_for", ms=5_000)
    assert raised.value.code == ErrorCode.TIMEOUT
    assert "sleep_for" in raised.value.message
    assert await served.client.call("sleep_for", ms=1) == 1


async def test_notification_gets_no_response_but_runs(served: Served) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "note", "params": {"text": "hi"}}).encode()
    response = await post(served.url, body, token=served.token)
    assert (response.status, response.body) == (204, b"")
    assert served.calls.noted == ["hi"]
    # Errors of notifications are not reported either.
    for method in ("crash", "no_such_method"):
        body = json.dumps({"jsonrpc": "2.0", "method": method}).encode()
        response = await post(served.url, body, token=served.token)
        assert (response.status, response.body) == (204, b"")


async def test_id_null_is_a_request_not_a_notification(served: Served) -> None:
    response = await post(served.url, call_body("echo", {"text": "x"}, None), token=served.token)
    assert response.json() == {"jsonrpc": "2.0", "id": None, "result": "x"}


# Batches.


async def test_batch_is_answered_in_order_without_notifications(served: Served) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": "a", "method": "add", "params": [1, 2]},
        {"jsonrpc": "2.0", "method": "note", "params": {"text": "batched"}},
        {"jsonrpc": "2.0", "id": "b", "method": "no_such_method"},
        5,
        {"jsonrpc": "2.0", "id": "c", "method": "echo", "params": {"text": "c"}},
    ]
    response = await post(served.url, json.dumps(batch).encode(), token=served.token)
    answers = response.json()
    assert isinstance(answers, list)
    assert [answer["id"] for answer in answers] == ["a", "b", None, "c"]
    assert answers[0]["result"] == "3"
    assert answers[1]["error"]["code"] == ErrorCode.METHOD_NOT_FOUND
    assert answers[2]["error"]["code"] == ErrorCode.INVALID_REQUEST
    assert answers[3]["result"] == "c"
    assert served.calls.noted == ["batched"]


async def test_batch_of_notifications_gets_no_response(served: Served) -> None:
    batch = [{"jsonrpc": "2.0", "method": "note", "params": [str(i)]} for i in range(3)]
    response = await post(served.url, json.dumps(batch).encode(), token=served.token)
    assert (response.status, response.body) == (204, b"")
    assert sorted(served.calls.noted) == ["0", "1", "2"]


async def test_empty_and_oversized_batches_are_invalid(served: Served) -> None:
    response = await post(served.url, b"[]", token=served.token)
    assert error_of(response.json())[:2] == (None, ErrorCode.INVALID_REQUEST)
    calls = [json.loads(call_body("version", request_id=i)) for i in range(101)]
    response = await post(served.url, json.dumps(calls).encode(), token=served.token)
    request_id, code, message = error_of(response.json())
    assert (request_id, code) == (None, ErrorCode.INVALID_REQUEST)
    assert str(constants.rpc_batch_calls_max) in message


# HTTP error paths.


@pytest.mark.parametrize("token", [None, "wrong", "Basic x"])
async def test_unauthorised_call_is_401_with_a_json_rpc_error(served: Served, token: str) -> None:
    presented = None if token is None else token
    response = await post(served.url, call_body("version"), token=presented)
    assert response.status == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert error_of(response.json())[:2] == (None, ErrorCode.UNAUTHORISED)


async def test_unauthorised_call_through_the_client_raises(served: Served) -> None:
    last = "B" if served.token.endswith("A") else "A"  # a token that surely differs
    client = RpcClient(served.url, served.token[:-1] + last, timeout_ms=5_000)
    with pytest.raises(RpcError) as raised:
        await client.call("version")
    assert raised.value.code == ErrorCode.UNAUTHORISED


async def test_unauthorised_websocket_is_401(served: Served) -> None:
    for token in (None, "wrong"):
        response = await exchange(served.url, websocket_upgrade("/ws", token=token))
        assert response.status == 401
        assert error_of(response.json())[:2] == (None, ErrorCode.UNAUTHORISED)
    assert served.server.subscriber_count == 0


async def test_wrong_path_is_404(served: Served) -> None:
    response = await exchange(
        served.url, http_request("POST", "/rpc", call_body("version"), token=served.token)
    )
    assert response.status == 404
    assert "POST /" in str(error_of(response.json())[2])


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("PUT", "/"), ("POST", "/ws")])
async def test_wrong_method_is_405(served: Served, method: str, path: str) -> None:
    response = await exchange(served.url, http_request(method, path, token=served.token))
    assert response.status == 405
    assert response.headers["allow"] in {"GET", "POST"}
    assert error_of(response.json())[1] == ErrorCode.INVALID_REQUEST


async def test_get_ws_without_upgrade_is_426(served: Served) -> None:
    response = await exchange(served.url, http_request("GET", "/ws", token=served.token))
    assert response.status == 426
    assert response.headers["upgrade"] == "websocket"


async def test_bad_subscription_names_are_400(served: Served) -> None:
    response = await exchange(
        served.url, websocket_upgrade("/ws?names=Bad-Name", token=served.token)
    )
    assert response.status == 400
    assert "names" in str(error_of(response.json())[2])


async def test_oversized_body_is_413(served: Served) -> None:
    limit = constants.rpc_request_bytes_max
    body = b'["' + b"x" * (limit - 3) + b'"]'
    assert len(body) == limit + 1
    response = await post(served.url, body, token=served.token)
    assert response.status == 413
    assert str(limit) in str(error_of(response.json())[2])
    assert await served.client.call("version") == node_version()


async def test_oversized_chunked_body_is_413(served: Served) -> None:
    chunk = b"x" * 65536
    chunks = b"".join(b"10000\r\n" + chunk + b"\r\n" for _ in range(17)) + b"0\r\n\r\n"
    head = (
        "POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
        f"authorization: Bearer {served.token}\r\ntransfer-encoding: chunked\r\n\r\n"
    ).encode()
    response = await exchange(served.url, head + chunks)
    assert response.status == 413


async def test_body_at_the_limit_is_accepted(served: Served) -> None:
    limit = constants.rpc_request_bytes_max
    prefix = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"text":"'
    suffix = b'"}}'
    filler = limit - len(prefix) - len(suffix)
    body = prefix + b" " * filler + suffix
    assert len(body) == limit
    response = await post(served.url, body, token=served.token)
    # 4096 characters is the string limit: the body is read whole, the param refused.
    assert error_of(response.json())[:2] == (1, ErrorCode.INVALID_PARAMS)


async def test_absurd_content_length_is_refused(served: Served) -> None:
    request = http_request("POST", "/", b"{}", token=served.token)
    request = request.replace(b"content-length: 2", b"content-length: " + b"9" * 5000)
    response = await exchange(served.url, request)
    assert response.status in {400, 413}  # h11 may refuse the number before we see it
    assert error_of(response.json())[1] == ErrorCode.INVALID_REQUEST
    assert await served.client.call("version") == node_version()


async def test_expect_100_continue_is_honoured(served: Served) -> None:
    body = call_body("echo", {"text": "after continue"})
    head = http_request("POST", "/", body, token=served.token, headers={"expect": "100-continue"})
    head = head[: -len(body)]
    stream = await open_raw(served.url)
    async with stream:
        await stream.send_all(head)
        with trio.fail_after(5):
            interim = await stream.receive_some(65536)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send_all(body)
        raw = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                raw += chunk
    assert parse_http_response(raw).json() == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": "after continue",
    }


async def test_malformed_http_is_400(served: Served) -> None:
    response = await exchange(served.url, b"NOT HTTP AT ALL\r\n\r\n")
    assert response.status == 400
    assert error_of(response.json())[1] == ErrorCode.INVALID_REQUEST


async def test_oversized_headers_are_431(served: Served) -> None:
    request = http_request(
        "POST", "/", b"{}", token=served.token, headers={"x-filler": "y" * 20_000}
    )
    response = await exchange(served.url, request)
    assert response.status == 431


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    from node.rpc._json import _nesting_depth

    assert _nesting_depth(b'[[["]]]]]][[[[\\"[["]]]') == 3
    assert _nesting_depth(b'{"a": "\\\\", "b": [[1]]}') == 3
    assert _nesting_depth(b"[]" * 1000) == 1


def test_deep_nesting_is_refused_whatever_the_recursion_limit() -> None:
    import sys

    from node.rpc._json import decode_json

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)  # the C parser would then overflow the C stack
    try:
        with pytest.raises(ValueError, match="nested deeper"):
            decode_json(b"[" * 500_000 + b"]" * 500_000)
    finally:
        sys.setrecursionlimit(limit)
    assert decode_json(b"[" * 64 + b"]" * 64) is not None
