"""Protobuf values as JSON a person can read: bytes as 0x-hex, uint256 amounts
as decimal strings, enums by name, 64-bit integers as numbers.

protobuf's own JSON mapping writes bytes as base64 and 64-bit integers as
strings, which hides ids, addresses and amounts from the reader.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# Every bytes field of these names holds a uint256, 32 bytes big-endian
# (the .proto comments say so; tests/core/test_core_json.py keeps the two in step).
UINT256_FIELDS = frozenset(
    {
        "amount",
        "capacity",
        "destination_holdings",
        "final_holdings",
        "initial_holdings",
        "left_amount",
        "left_deposit",
        "paid",
        "received",
        "sent",
        "voucher_amount",
    }
)


def message_to_json(message: Message) -> dict[str, Any]:
    """The set fields of ``message`` (and of its nested messages) as plain JSON values."""
    result: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            result[field.name] = [_value(field, item) for item in value]
        else:
            result[field.name] = _value(field, value)
    return result


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_to_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        if field.name in UINT256_FIELDS:
            return str(int.from_bytes(value, "big"))
        return "0x" + bytes(value).hex()
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    return value
