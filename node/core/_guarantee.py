"""Guarantees: how a ledger channel funds a virtual channel.

A guarantee is an allocation of type 2 whose destination is the funded
channel and whose metadata names the two ledger parties:
``abi.encode((bytes32 left, bytes32 right))``, which is exactly left || right.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from node.core import constants
from node.core._types import Allocation
from node.core._validate import check_bytes, check_bytes32, check_channel_id, check_uint
from node.core.errors import InvalidValueError


@dataclass(frozen=True)
class GuaranteeMetadata:
    """The two destinations named by a guarantee allocation.

    Attributes:
        left: 32-byte destination of the left ledger party.
        right: 32-byte destination of the right ledger party.
    """

    left: bytes
    right: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "left", check_bytes32(self.left, "left"))
        object.__setattr__(self, "right", check_bytes32(self.right, "right"))


def encode_guarantee_metadata(left: bytes, right: bytes) -> bytes:
    """``abi.encode((bytes32 left, bytes32 right))``: 64 bytes, left || right.

    Raises:
        InvalidValueError: ``left`` or ``right`` is not 32 bytes.
    """
    encoded = check_bytes32(left, "left") + check_bytes32(right, "right")
    assert len(encoded) == constants.guarantee_metadata_bytes
    return encoded


def decode_guarantee_metadata(data: bytes) -> GuaranteeMetadata:
    """The inverse of ``encode_guarantee_metadata``.

    Raises:
        InvalidValueError: ``data`` is not exactly 64 bytes.
    """
    data = check_bytes(data, "metadata")
    if len(data) != constants.guarantee_metadata_bytes:
        raise InvalidValueError(
            "metadata",
            f"guarantee metadata must be {constants.guarantee_metadata_bytes} bytes,"
            f" got {len(data)}",
        )
    return GuaranteeMetadata(left=data[:32], right=data[32:])


@dataclass(frozen=True)
class Guarantee:
    """A ledger channel's guarantee for a target (virtual) channel.

    Attributes:
        target: the funded channel's id.
        amount: uint256 locked for the target.
        left: 32-byte destination of the left ledger party.
        right: 32-byte destination of the right ledger party.
    """

    target: bytes
    amount: int
    left: bytes
    right: bytes
    # Filled on first use by to_allocation(); not part of equality.
    _allocation: Allocation | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "target", check_channel_id(self.target, "target"))
        setter(self, "amount", check_uint(self.amount, "amount", constants.uint256_max))
        setter(self, "left", check_bytes32(self.left, "left"))
        setter(self, "right", check_bytes32(self.right, "right"))

    def to_allocation(self) -> Allocation:
        """The guarantee as it appears in the ledger channel's outcome."""
        if self._allocation is None:
            allocation = Allocation(
                destination=self.target,
                amount=self.amount,
                allocation_type=constants.allocation_type_guarantee,
                metadata=encode_guarantee_metadata(self.left, self.right),
            )
            object.__setattr__(self, "_allocation", allocation)
            return allocation
        return self._allocation

    @staticmethod
    def from_allocation(allocation: Allocation) -> Guarantee:
        """The guarantee described by a type-2 allocation.

        Raises:
            InvalidValueError: the allocation is not a guarantee, or its target
                is not shaped like a channel id.
        """
        if allocation.allocation_type != constants.allocation_type_guarantee:
            raise InvalidValueError(
                "allocation_type", f"{allocation.allocation_type} is not a guarantee (2)"
            )
        return _guarantee_of(allocation)


# Cached: every ledger state holds all of its ledger's guarantees, and reading one must
# not rebuild each of them. Errors are not cached, values are immutable.
@functools.lru_cache(maxsize=1 << 16)
def _guarantee_of(allocation: Allocation) -> Guarantee:
    metadata = decode_guarantee_metadata(allocation.metadata)
    guarantee = Guarantee(
        target=allocation.destination,
        amount=allocation.amount,
        left=metadata.left,
        right=metadata.right,
    )
    object.__setattr__(guarantee, "_allocation", allocation)
    return guarantee
