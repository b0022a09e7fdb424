"""JSON values as the RPC layer sees them, and strict encode and decode functions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeAlias

JsonValue: TypeAlias = (
    None | bool | int | float | str | Sequence["JsonValue"] | Mapping[str, "JsonValue"]
)


def _refuse_constant(name: str) -> None:
    # NaN and Infinity are not JSON: Python's json module accepts them by default.
    raise ValueError(f"{name} is not valid JSON")


def decode_json(raw: bytes | str) -> object:
    """Parse strict JSON.

    Raises:
        ValueError: not JSON, not UTF-8, a non-finite number, or nested too deep.
    """
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def encode_json(value: object) -> str:
    """Serialise a value as compact ASCII JSON.

    Raises:
        TypeError: the value holds something JSON cannot carry.
        ValueError: the value holds a non-finite float or a reference cycle.
    """
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
