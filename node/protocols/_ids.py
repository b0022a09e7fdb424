"""Objective ids: the kind of an objective plus the channel it works on."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from node.core import constants
from node.core.errors import InvalidValueError

_CHANNEL_ID_HEX_CHARS = 2 * constants.bytes32_bytes


class ObjectiveKind(enum.Enum):
    """What an objective does; the value is the prefix of its display id."""

    DIRECT_FUND = "DirectFunding"
    DIRECT_DEFUND = "DirectDefunding"
    VIRTUAL_FUND = "VirtualFunding"
    VIRTUAL_DEFUND = "VirtualDefunding"
    SETTLE = "Settling"
    DEFEND = "Defending"
    GUARD = "Guarding"


@dataclass(frozen=True)
class ObjectiveId:
    """An objective's identity: at most one objective of a kind runs per channel.

    Attributes:
        kind: what the objective does.
        channel_id: the 32-byte id of the channel it works on.
    """

    kind: ObjectiveKind
    channel_id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ObjectiveKind):
            raise InvalidValueError("kind", f"expected an ObjectiveKind, got {self.kind!r}")
        if type(self.channel_id) is not bytes or len(self.channel_id) != constants.bytes32_bytes:
            raise InvalidValueError("channel_id", "expected 32 bytes")

    def __str__(self) -> str:
        return f"{self.kind.value}-0x{self.channel_id.hex()}"


def parse_objective_id(text: str) -> ObjectiveId:
    """The inverse of ``str(ObjectiveId)``, for ids read from the log or an API call.

    Raises:
        InvalidValueError: unknown kind, or the channel id is not 32 bytes of lowercase hex.
    """
    if not isinstance(text, str):
        raise InvalidValueError("objective_id", f"expected a string, got {type(text).__name__}")
    prefix, separator, channel_hex = text.partition("-0x")
    kinds = {kind.value: kind for kind in ObjectiveKind}
    if not separator or prefix not in kinds:
        raise InvalidValueError("objective_id", f"{text!r} does not start with a known kind")
    if len(channel_hex) != _CHANNEL_ID_HEX_CHARS or channel_hex != channel_hex.lower():
        raise InvalidValueError("objective_id", f"{text!r}: expected 64 lowercase hex digits")
    try:
        channel = bytes.fromhex(channel_hex)
    except ValueError as error:
        raise InvalidValueError("objective_id", f"{text!r} is not hexadecimal") from error
    return ObjectiveId(kinds[prefix], channel)
