"""Param specs and the registry, without sockets: conversions, refusals, declarations."""

from __future__ import annotations

import pytest

from node.core import constants
from node.rpc import (
    ADDRESS,
    ANY,
    BOOL,
    BYTES32,
    OBJECT,
    UINT64,
    UINT256,
    ErrorCode,
    MethodRegistry,
    Param,
    ParamsSpec,
    RpcError,
    application_code_max,
    application_code_min,
    hex_bytes,
    integer,
    list_of,
    one_of,
)

ADDRESS_TEXT = "0x5409ED021D9299bf6814279A6A1411A7e866A631"


def refusal(spec: ParamsSpec, raw: object) -> RpcError:
    with pytest.raises(RpcError) as raised:
        spec.validate(raw)
    assert raised.value.code == ErrorCode.INVALID_PARAMS
    return raised.value


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (UINT256, 0, 0),
        (
            UINT256,
            "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            constants.uint256_max,
        ),
        (UINT256, "007", 7),
        (UINT64, constants.uint64_max, constants.uint64_max),
        (integer(-5, 5), -5, -5),
        (ADDRESS, ADDRESS_TEXT.lower(), ADDRESS_TEXT),
        (BYTES32, "0x" + "00" * 32, bytes(32)),
        (hex_bytes(), "0x", b""),
        (hex_bytes(), "0xABcd", b"\xab\xcd"),
        (BOOL, False, False),
        (OBJECT, {"a": [1]}, {"a": [1]}),
        (ANY, [None], [None]),
        (one_of("fund", "defund"), "defund", "defund"),
        (list_of(UINT64, items_max=2), [1, "2"], [1, 2]),
    ],
)
def test_conversions(kind: object, raw: object, expected: object) -> None:
    spec = ParamsSpec(Param("value", kind))  # type: ignore[arg-type]
    assert spec.validate({"value": raw}) == {"value": expected}
    assert spec.validate([raw]) == {"value": expected}


@pytest.mark.parametrize(
    ("kind", "raw", "problem"),
    [
        (UINT256, -1, "out of range"),
        (UINT256, constants.uint256_max + 1, "out of range"),
        (UINT256, "1" * 80, "not a decimal integer"),
        (UINT256, "+1", "not a decimal integer"),
        (UINT256, " 1", "not a decimal integer"),
        (UINT256, True, "expected an integer"),
        (UINT256, 1.0, "expected an integer"),
        (UINT256, None, "expected an integer"),
        (integer(-5, 5), "1", "expected an integer"),
        (ADDRESS, 5, "expected a 0x address"),
        (ADDRESS, "0x" + "g" * 40, "not hexadecimal"),
        (ADDRESS, ADDRESS_TEXT + "00", "40 hex digits"),
        (BYTES32, "0x" + "00" * 31, "expected 32 bytes"),
        (hex_bytes(), "0xabc", "even number"),
        (hex_bytes(bytes_max=1), "0xabcd", "longer than 1 bytes"),
        (BOOL, 0, "expected a boolean"),
        (OBJECT, [], "expected an object"),
        (one_of("fund"), "defund", "expected one of fund"),
        (list_of(UINT64, items_max=1), [1, 2], "more than 1 items"),
        (list_of(UINT64, items_max=2), "12", "expected an array"),
    ],
)
def test_refusals_name_the_param(kind: object, raw: object, problem: str) -> None:
    spec = ParamsSpec(Param("value", kind))  # type: ignore[arg-type]
    error = refusal(spec, {"value": raw})
    assert error.message.startswith("invalid param 'value': ")
    assert problem in error.message
    assert error.data == {"param": "value"}


def test_list_refusal_names_the_element() -> None:
    spec = ParamsSpec(Param("amounts", list_of(UINT256, items_max=4)))
    error = refusal(spec, {"amounts": [1, "x"]})
    assert "amounts[1]" in error.message
    assert error.data == {"param": "amounts"}


def test_missing_unknown_and_surplus_params() -> None:
    spec = ParamsSpec(Param("a", UINT64), Param("b", UINT64, required=False, default=9))
    assert spec.validate({"a": 1}) == {"a": 1, "b": 9}
    assert spec.validate([1]) == {"a": 1, "b": 9}
    assert spec.validate([1, 2]) == {"a": 1, "b": 2}
    assert refusal(spec, None).data == {"param": "a"}
    assert refusal(spec, {}).message == "missing required param 'a' (uint64)"
    assert refusal(spec, {"a": 1, "zz": 2}).message == "unknown param 'zz'"
    surplus = refusal(spec, [1, 2, 3])
    assert surplus.message == "expected at most 2 params, got 3"
    assert surplus.data is None


def test_spec_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        ParamsSpec(Param("a", UINT64), Param("a", UINT64))
    with pytest.raises(ValueError, match="before optional"):
        ParamsSpec(Param("a", UINT64, required=False), Param("b", UINT64))
    with pytest.raises(ValueError, match="lower_snake_case"):
        Param("Amount", UINT64)


async def test_registry_declarations_are_checked() -> None:
    registry = MethodRegistry()

    async def handler() -> None:
        return None

    with pytest.raises(ValueError, match="already registered"):
        registry.register("version", handler)
    with pytest.raises(ValueError, match="lower_snake_case"):
        registry.register("Get-Address", handler)
    with pytest.raises(ValueError, match="timeout_ms"):
        registry.register("get_address", handler, timeout_ms=0)
    with pytest.raises(ValueError, match="does not take the declared params"):
        registry.register("get_address", handler, params=[Param("peer", ADDRESS)])

    async def needs_two(peer: str, amount: int) -> None:
        del peer, amount

    with pytest.raises(ValueError, match="does not take the declared params"):
        registry.register("get_address", needs_two, params=[Param("peer", ADDRESS)])

    async def takes_peer(peer: str) -> str:
        return peer

    registry.register("get_address", takes_peer, params=[Param("peer", ADDRESS)])
    method = registry.get("get_address")
    assert method is not None
    assert method.params.describe() == [{"name": "peer", "type": "address", "required": True}]
    assert registry.names() == ["get_address", "methods", "version"]
    assert registry.get("nope") is None


def test_rpc_error_carries_its_parts() -> None:
    error = RpcError(ErrorCode.OBJECTIVE_FAILED, "objective failed", {"objective": "x"})
    assert error.to_json() == {
        "code": -32010,
        "message": "objective failed",
        "data": {"objective": "x"},
    }
    assert RpcError(-32011, "channel not found").to_json() == {
        "code": -32011,
        "message": "channel not found",
    }
    with pytest.raises(TypeError, match="code"):
        RpcError("1", "x")  # type: ignore[arg-type]


def test_error_codes_keep_to_their_ranges() -> None:
    # JSON-RPC 2.0 fixes these five.
    assert int(ErrorCode.PARSE_ERROR) == -32700
    assert int(ErrorCode.INVALID_REQUEST) == -32600
    assert int(ErrorCode.METHOD_NOT_FOUND) == -32601
    assert int(ErrorCode.INVALID_PARAMS) == -32602
    assert int(ErrorCode.INTERNAL_ERROR) == -32603
    server = [ErrorCode.UNAUTHORISED, ErrorCode.TIMEOUT, ErrorCode.OVERLOADED]
    assert all(-32009 <= code <= -32000 for code in server)
    application = [code for code in ErrorCode if code <= application_code_max]
    application = [code for code in application if code >= application_code_min]
    assert ErrorCode.OBJECTIVE_FAILED in application
    assert ErrorCode.CHANNEL_NOT_FOUND in application
    assert ErrorCode.CHAIN_ERROR in application
    assert len(application) + len(server) + 5 == len(ErrorCode)
    assert application_code_min < application_code_max < min(server)
