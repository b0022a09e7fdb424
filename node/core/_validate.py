"""Field checks shared by the value types: each raises InvalidValueError naming the field."""

from __future__ import annotations

from node.core import constants
from node.core.errors import InvalidSignatureError, InvalidValueError


def problem_of(error: InvalidValueError) -> str:
    """The message of ``error`` without its ``field:`` prefix."""
    return str(error)[len(error.field) + 2 :]


def check_uint(value: object, field: str, maximum: int) -> int:
    """Return ``value`` if it is an int in ``[0, maximum]``.

    Raises:
        InvalidValueError: it is not an int (bools are refused) or out of range.
    """
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValueError(field, f"expected an int, got {type(value).__name__}")
        value = int(value)
    if value < 0:
        raise InvalidValueError(field, f"{value} is negative")
    if value > maximum:
        raise InvalidValueError(field, f"{value} exceeds the maximum {maximum}")
    return value


def check_bytes(value: object, field: str) -> bytes:
    """Return ``value`` as immutable bytes (bytearray and memoryview are copied).

    Raises:
        InvalidValueError: it is not bytes-like.
    """
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise InvalidValueError(field, f"expected bytes, got {type(value).__name__}")


def check_bytes32(value: object, field: str) -> bytes:
    """Return ``value`` if it is exactly 32 bytes.

    Raises:
        InvalidValueError: not bytes, or not 32 of them.
    """
    data = check_bytes(value, field)
    if len(data) != constants.bytes32_bytes:
        raise InvalidValueError(field, f"expected {constants.bytes32_bytes} bytes, got {len(data)}")
    return data


def check_bool(value: object, field: str) -> bool:
    """Return ``value`` if it is a bool.

    Raises:
        InvalidValueError: it is anything else (0 and 1 included).
    """
    if not isinstance(value, bool):
        raise InvalidValueError(field, f"expected a bool, got {type(value).__name__}")
    return value


def check_channel_id(value: object, field: str) -> bytes:
    """Return ``value`` if it is shaped like a channel id.

    A channel id is 32 bytes whose first 12 are not all zero: that shape is
    reserved for external addresses used as destinations.

    Raises:
        InvalidValueError: wrong length, or shaped like an external destination.
    """
    data = check_bytes32(value, field)
    if not any(data[: constants.external_destination_prefix_bytes]):
        raise InvalidValueError(
            field, "first 12 bytes are zero: shaped like an external address, not a channel id"
        )
    return data


# Order of the secp256k1 group; signatures use s <= n / 2 (low-S, EIP-2).
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


def check_signature(value: object, field: str) -> bytes:
    """Return ``value`` if it is a well-formed ``r || s || v`` signature.

    Raises:
        InvalidSignatureError: not 65 bytes, v not 27/28, r or s zero or not
            below the group order, or s in the upper half (high-S).
    """
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidSignatureError(field, f"expected bytes, got {type(value).__name__}")
    signature = bytes(value)
    if len(signature) != constants.signature_bytes:
        raise InvalidSignatureError(
            field, f"expected {constants.signature_bytes} bytes, got {len(signature)}"
        )
    v = signature[64]
    if v != 27 and v != 28:
        raise InvalidSignatureError(field, f"v is {v}, expected 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    if r == 0 or r >= SECP256K1_N:
        raise InvalidSignatureError(field, "r is zero or not below the secp256k1 order")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s >= SECP256K1_N:
        raise InvalidSignatureError(field, "s is zero or not below the secp256k1 order")
    if s > SECP256K1_HALF_N:
        raise InvalidSignatureError(field, "s is in the upper half of the order (high-S)")
    return signature
