"""Typed method parameters: declared once per method, checked before the handler runs.

A handler receives converted values as keyword arguments: addresses as EIP-55
strings, 32-byte ids and hex blobs as ``bytes``, uint256 amounts as ``int``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from node.core import constants, to_checksum_address
from node.core.errors import InvalidValueError
from node.rpc._errors import ErrorCode, RpcError
from node.rpc._json import JsonValue

_DECIMAL = re.compile(r"[0-9]+")
_HEX_BODY = re.compile(r"(?:[0-9a-fA-F]{2})*")
_UINT256_DIGITS_MAX = len(str(constants.uint256_max))
_STRING_CHARS_MAX = 4096
_ADDRESS_CHARS = 2 + 2 * constants.address_bytes
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")

Converter = Callable[[object, str], object]


@dataclass(frozen=True)
class ParamType:
    """A parameter's type: a name for people and a converter.

    ``convert(value, field)`` returns the value the handler gets, or raises
    ``InvalidValueError(field, problem)``.
    """

    name: str
    convert: Converter


def _type_name(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(field, f"expected a string, got {_type_name(value)}")
    if len(value) > _STRING_CHARS_MAX:
        raise InvalidValueError(field, f"longer than {_STRING_CHARS_MAX} characters")
    return value


def _boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValueError(field, f"expected a boolean, got {_type_name(value)}")
    return value


def integer(minimum: int, maximum: int, *, name: str = "integer") -> ParamType:
    """An integer in ``[minimum, maximum]``: a JSON integer, or a decimal string if
    ``minimum >= 0`` (amounts beyond 2**53 do not survive JSON numbers in many clients)."""
    assert minimum <= maximum

    def convert(value: object, field: str) -> int:
        if isinstance(value, str) and minimum >= 0:
            if len(value) > _UINT256_DIGITS_MAX or not _DECIMAL.fullmatch(value):
                raise InvalidValueError(field, f"{value[:80]!r} is not a decimal integer")
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise InvalidValueError(
                field, f"expected an integer or a decimal string, got {_type_name(value)}"
            )
        if not minimum <= number <= maximum:
            raise InvalidValueError(field, f"out of range [{minimum}, {maximum}]")
        return number

    return ParamType(name, convert)


def _address(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(field, f"expected a 0x address string, got {_type_name(value)}")
    if len(value) != _ADDRESS_CHARS:
        raise InvalidValueError(field, f"expected 0x and 40 hex digits, got {len(value)} chars")
    return to_checksum_address(value, field)


def hex_bytes(*, size_bytes: int | None = None, bytes_max: int = 1024 * 1024) -> ParamType:
    """``0x``-prefixed hex, converted to bytes: exactly ``size_bytes`` long if given."""
    assert size_bytes is None or 0 < size_bytes <= bytes_max

    def convert(value: object, field: str) -> bytes:
        if not isinstance(value, str) or not value.startswith("0x"):
            raise InvalidValueError(field, "expected a 0x-prefixed hex string")
        body = value[2:]
        if len(body) > 2 * bytes_max:
            raise InvalidValueError(field, f"longer than {bytes_max} bytes")
        if not _HEX_BODY.fullmatch(body):
            raise InvalidValueError(field, "not an even number of hex digits")
        raw = bytes.fromhex(body)
        if size_bytes is not None and len(raw) != size_bytes:
            raise InvalidValueError(field, f"expected {size_bytes} bytes, got {len(raw)}")
        return raw

    name = "hex" if size_bytes is None else f"hex{size_bytes}"
    return ParamType(name, convert)


def _json_object(value: object, field: str) -> dict[str, JsonValue]:
    if not isinstance(value, dict):
        raise InvalidValueError(field, f"expected an object, got {_type_name(value)}")
    return value


def _anything(value: object, field: str) -> object:
    del field  # every JSON value is acceptable
    return value


def list_of(item: ParamType, *, items_max: int) -> ParamType:
    """A JSON array of at most ``items_max`` values of type ``item``."""
    assert items_max > 0

    def convert(value: object, field: str) -> list[object]:
        if not isinstance(value, list):
            raise InvalidValueError(field, f"expected an array, got {_type_name(value)}")
        if len(value) > items_max:
            raise InvalidValueError(field, f"more than {items_max} items")
        return [item.convert(element, f"{field}[{index}]") for index, element in enumerate(value)]

    return ParamType(f"list[{item.name}]", convert)


def one_of(*choices: str) -> ParamType:
    """One of a fixed set of strings."""
    assert choices
    allowed = frozenset(choices)

    def convert(value: object, field: str) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise InvalidValueError(field, f"expected one of {', '.join(sorted(allowed))}")
        return value

    return ParamType("|".join(choices), convert)


STRING = ParamType("string", _string)
BOOL = ParamType("boolean", _boolean)
UINT64 = integer(0, constants.uint64_max, name="uint64")
UINT256 = integer(0, constants.uint256_max, name="uint256")
ADDRESS = ParamType("address", _address)
BYTES32 = hex_bytes(size_bytes=constants.bytes32_bytes)
OBJECT = ParamType("object", _json_object)
ANY = ParamType("any", _anything)


@dataclass(frozen=True)
class Param:
    """One named parameter. An optional parameter left out is passed as ``default``."""

    name: str
    type: ParamType
    required: bool = True
    default: object = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"param name {self.name!r}: use lower_snake_case, at most 64 chars")


@dataclass(frozen=True, init=False)
class ParamsSpec:
    """The parameters of one method, in positional order.

    Calls may pass params by name (a JSON object) or by position (an array);
    optional params follow the required ones so that positions stay unambiguous.
    """

    params: tuple[Param, ...]

    def __init__(self, *params: Param) -> None:
        names = [param.name for param in params]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"params: duplicate names {duplicates}")
        required = [param.required for param in params]
        if required != sorted(required, reverse=True):
            raise ValueError("params: required params must come before optional ones")
        object.__setattr__(self, "params", params)

    def describe(self) -> list[JsonValue]:
        """The params as JSON, for the ``methods`` built-in."""
        return [
            {"name": param.name, "type": param.type.name, "required": param.required}
            for param in self.params
        ]

    def validate(self, raw: object) -> dict[str, object]:
        """Check and convert raw JSON-RPC params into handler keyword arguments.

        Args:
            raw: the ``params`` member: an object, an array, or ``None`` if absent.

        Raises:
            RpcError: ``INVALID_PARAMS``, naming the param in the message and in ``data``.
        """
        given = self._by_name(raw)
        unknown = sorted(set(given) - {param.name for param in self.params})
        if unknown:
            raise _invalid(unknown[0], f"unknown param {unknown[0][:64]!r}")
        converted: dict[str, object] = {}
        for param in self.params:
            if param.name not in given:
                if param.required:
                    problem = f"missing required param {param.name!r} ({param.type.name})"
                    raise _invalid(param.name, problem)
                converted[param.name] = param.default
                continue
            try:
                converted[param.name] = param.type.convert(given[param.name], param.name)
            except InvalidValueError as error:
                raise _invalid(param.name, _problem(param.name, error)) from None
        return converted

    def _by_name(self, raw: object) -> Mapping[str, object]:
        if raw is None:
            return {}
        if isinstance(raw, dict):
            return raw
        assert isinstance(raw, list), "the dispatcher admits only objects and arrays"
        if len(raw) > len(self.params):
            raise _invalid(None, f"expected at most {len(self.params)} params, got {len(raw)}")
        return {param.name: value for param, value in zip(self.params, raw, strict=False)}


def _problem(name: str, error: InvalidValueError) -> str:
    detail = str(error)
    if error.field == name:  # drop the "name: " prefix the message repeats
        detail = detail[len(name) + 2 :]
    return f"invalid param {name!r}: {detail}"


def _invalid(name: str | None, message: str) -> RpcError:
    data: JsonValue = {"param": name[:64]} if name is not None else None
    return RpcError(ErrorCode.INVALID_PARAMS, message, data)


def spec_of(params: ParamsSpec | Sequence[Param] | None) -> ParamsSpec:
    """A ``ParamsSpec`` from a spec, a list of params, or nothing (no params)."""
    if params is None:
        return ParamsSpec()
    if isinstance(params, ParamsSpec):
        return params
    return ParamsSpec(*params)
