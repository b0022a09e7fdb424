"""JSON-RPC 2.0 dispatch: one HTTP body in, one JSON answer (or none) out."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio

from node.core import constants
from node.rpc._errors import ErrorCode, RpcError
from node.rpc._json import JsonValue, decode_json, encode_json
from node.rpc._registry import Method, MethodRegistry

logger = logging.getLogger("node.rpc")

RequestId = str | int | None
_NAME_SHOWN_CHARS_MAX = 64


@dataclass(frozen=True)
class Call:
    """A well-formed request. ``notification`` calls (no ``id``) get no response."""

    id: RequestId
    notification: bool
    method: str
    params: object


@dataclass(frozen=True)
class Invalid:
    """A request object that breaks JSON-RPC 2.0; answered with ``INVALID_REQUEST``."""

    id: RequestId
    problem: str


def parse_call(item: object) -> Call | Invalid:
    """Check the shape of one request object (pure)."""
    if not isinstance(item, dict):
        return Invalid(None, "a request must be a JSON object")
    request_id = item.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        return Invalid(None, "id must be a string, an integer or null")
    if item.get("jsonrpc") != "2.0":
        return Invalid(request_id, 'jsonrpc must be "2.0"')
    method = item.get("method")
    if not isinstance(method, str):
        return Invalid(request_id, "method must be a string")
    params = item.get("params")
    if "params" in item and not isinstance(params, dict | list):
        return Invalid(request_id, "params must be an object or an array")
    return Call(request_id, "id" not in item, method, params)


def error_body(request_id: RequestId, error: RpcError) -> str:
    """A JSON-RPC error response; falls back to an internal error if ``data`` is not JSON."""
    try:
        return encode_json({"jsonrpc": "2.0", "id": request_id, "error": error.to_json()})
    except (TypeError, ValueError):
        logger.exception("error data of code %d is not JSON", error.code)
        internal = RpcError(ErrorCode.INTERNAL_ERROR, "internal error")
        return encode_json({"jsonrpc": "2.0", "id": request_id, "error": internal.to_json()})


async def dispatch_body(registry: MethodRegistry, body: bytes, *, timeout_ms: int) -> str | None:
    """Answer one HTTP body: a single request or a batch.

    Returns:
        The JSON text to send, or ``None`` when every call was a notification.
    """
    try:
        message = decode_json(body)
    except ValueError as error:
        return error_body(None, RpcError(ErrorCode.PARSE_ERROR, f"parse error: {error}"))
    if not isinstance(message, list):
        return await answer(registry, message, timeout_ms=timeout_ms)
    if not message:
        return error_body(None, RpcError(ErrorCode.INVALID_REQUEST, "empty batch"))
    if len(message) > constants.rpc_batch_calls_max:
        problem = f"batch of {len(message)} calls exceeds {constants.rpc_batch_calls_max}"
        return error_body(None, RpcError(ErrorCode.INVALID_REQUEST, problem))
    answers: list[str | None] = [None] * len(message)

    async def answer_into(index: int, item: object) -> None:
        answers[index] = await answer(registry, item, timeout_ms=timeout_ms)

    async with trio.open_nursery() as nursery:
        for index, item in enumerate(message):
            nursery.start_soon(answer_into, index, item)
    parts = [part for part in answers if part is not None]
    return "[" + ",".join(parts) + "]" if parts else None


async def answer(registry: MethodRegistry, item: object, *, timeout_ms: int) -> str | None:
    """Answer one request object; ``None`` for a notification."""
    call = parse_call(item)
    if isinstance(call, Invalid):
        return error_body(call.id, RpcError(ErrorCode.INVALID_REQUEST, call.problem))
    try:
        method = registry.get(call.method)
        if method is None:
            shown = call.method[:_NAME_SHOWN_CHARS_MAX]
            raise RpcError(ErrorCode.METHOD_NOT_FOUND, f"method not found: {shown!r}")
        arguments = method.params.validate(call.params)
        result = await _run(method, arguments, timeout_ms=method.timeout_ms or timeout_ms)
        if call.notification:
            return None
        return _result_body(call.id, method.name, result)
    except RpcError as error:
        return None if call.notification else error_body(call.id, error)


async def _run(method: Method, arguments: dict[str, object], *, timeout_ms: int) -> JsonValue:
    result: JsonValue = None
    with trio.move_on_after(timeout_ms / 1000) as scope:
        try:
            result = await method.handler(**arguments)
        except RpcError:
            raise
        except Exception:
            # A handler bug: log it whole, tell the client nothing about our insides.
            logger.exception("handler of %s failed", method.name)
            raise RpcError(ErrorCode.INTERNAL_ERROR, "internal error") from None
    if scope.cancelled_caught:
        raise RpcError(ErrorCode.TIMEOUT, f"{method.name} did not answer within {timeout_ms} ms")
    return result


def _result_body(request_id: RequestId, name: str, result: JsonValue) -> str:
    try:
        return encode_json({"jsonrpc": "2.0", "id": request_id, "result": result})
    except (TypeError, ValueError):
        logger.exception("handler of %s returned a value JSON cannot carry", name)
        raise RpcError(ErrorCode.INTERNAL_ERROR, "internal error") from None
