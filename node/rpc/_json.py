"""JSON values as the RPC layer sees them, and strict encode and decode functions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from node.core import constants

JsonValue: TypeAlias = (
    None | bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"]
)


def _refuse_constant(name: str) -> None:
    # NaN and Infinity are not JSON: Python's json module accepts them by default.
    raise ValueError(f"{name} is not valid JSON")


# A complete JSON string (escapes included), and every byte that is not a bracket.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_OPENING = frozenset(b"[{")


def _nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, brackets in strings aside."""
    outside = _STRING.sub(b"", raw)
    unterminated = outside.find(b'"')
    if unterminated >= 0:
        outside = outside[:unterminated]  # the rest is inside a string that never ends
    depth = depth_max = 0
    for byte in outside.translate(None, _NOT_BRACKETS):
        if byte in _OPENING:
            depth += 1
            depth_max = max(depth_max, depth)
        else:
            depth -= 1
    return depth_max


def decode_json(raw: bytes | str) -> object:
    """Parse strict JSON.

    The nesting is bounded before parsing: the C parser recurses once per level,
    and with a raised recursion limit a deep enough body overflows the C stack.

    Raises:
        ValueError: not JSON, not UTF-8, a non-finite number, or nested too deep.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    depth_max = constants.rpc_json_depth_max
    # Counting brackets is cheap; only a body with many of them needs the scan.
    if data.count(b"[") + data.count(b"{") > depth_max and _nesting_depth(data) > depth_max:
        raise ValueError(f"JSON nested deeper than {constants.rpc_json_depth_max} levels")
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def encode_json(value: object) -> str:
    """Serialise a value as compact ASCII JSON.

    Raises:
        TypeError: the value holds something JSON cannot carry.
        ValueError: the value holds a non-finite float or a reference cycle.
    """
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
