"""Conversion between the core values and their protobuf messages (nitro.proto).

Decoders face peer input: they range-check every field and raise
InvalidValueError (or InvalidSignatureError) naming the field's path, such as
``state.outcome[0].allocations[1].amount``; they never assert.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from node.core import constants
from node.core._address import address_from_bytes, address_to_bytes
from node.core._guarantee import Guarantee
from node.core._types import Allocation, FixedPart, SignedState, SingleAssetExit, State, Voucher
from node.core._validate import check_bytes, problem_of
from node.core.errors import InvalidValueError
from node.proto import nitro_pb2

_T = TypeVar("_T")
_UINT256_BYTES = constants.bytes32_bytes

# Decoded values by their wire bytes: the same state reaches a node many times (its
# view, the log, a peer), and decoding it again would cost a validated value per
# allocation. The values are immutable and checked before they are kept; the bounds
# only cap memory.
_WIRE_KEPT_BYTES_MAX = 4 * 1024 * 1024  # per kind, of wire bytes: ledger states are large


class _ByWire(Generic[_T]):
    """Values by their serialized message, the oldest dropped past a byte budget."""

    def __init__(self, bytes_max: int) -> None:
        self.bytes_max = bytes_max
        self.values: dict[bytes, _T] = {}
        self.bytes = 0

    def get(self, wire: bytes) -> _T | None:
        return self.values.get(wire)

    def keep(self, wire: bytes, value: _T) -> None:
        if wire in self.values:
            return
        while self.values and self.bytes + len(wire) > self.bytes_max:
            oldest = next(iter(self.values))
            del self.values[oldest]
            self.bytes -= len(oldest)
        self.values[wire] = value
        self.bytes += len(wire)


_fixed_parts: _ByWire[FixedPart] = _ByWire(_WIRE_KEPT_BYTES_MAX)
_states: _ByWire[State] = _ByWire(_WIRE_KEPT_BYTES_MAX)
_signed_states: _ByWire[SignedState] = _ByWire(_WIRE_KEPT_BYTES_MAX)


def uint256_to_bytes(value: int, field: str = "value") -> bytes:
    """``value`` as exactly 32 bytes, big-endian.

    Raises:
        InvalidValueError: negative, too large for uint256, or not an int.
    """
    if type(value) is not int or not 0 <= value <= constants.uint256_max:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValueError(field, f"expected an int, got {type(value).__name__}")
        if value < 0:
            raise InvalidValueError(field, f"{value} is negative")
        if value > constants.uint256_max:
            raise InvalidValueError(field, f"{value} does not fit in uint256")
    return int(value).to_bytes(_UINT256_BYTES, "big")


def uint256_from_bytes(data: bytes, field: str = "value") -> int:
    """The inverse of ``uint256_to_bytes``: exactly 32 bytes, big-endian.

    Raises:
        InvalidValueError: not exactly 32 bytes.
    """
    data = check_bytes(data, field)
    if len(data) != _UINT256_BYTES:
        raise InvalidValueError(field, f"uint256 must be {_UINT256_BYTES} bytes, got {len(data)}")
    return int.from_bytes(data, "big")


@contextmanager
def _at(path: str) -> Iterator[None]:
    """Prefix the field of any InvalidValueError raised inside with ``path``."""
    try:
        yield
    except InvalidValueError as error:
        raise type(error)(f"{path}.{error.field}", problem_of(error)) from error


def _decoded(path: str, build: Callable[[], _T]) -> _T:
    with _at(path):
        return build()


# FixedPart


def fixed_part_to_proto(fixed: FixedPart) -> nitro_pb2.FixedPart:
    """The wire form of ``fixed``."""
    return nitro_pb2.FixedPart(
        participants=[address_to_bytes(p) for p in fixed.participants],
        channel_nonce=fixed.channel_nonce,
        app_definition=address_to_bytes(fixed.app_definition),
        challenge_duration=fixed.challenge_duration,
    )


def fixed_part_from_proto(message: nitro_pb2.FixedPart, path: str = "fixed") -> FixedPart:
    """Decode and validate a FixedPart; errors name ``path``.field. One decoded before
    is the same value again (its channel id computed once)."""
    wire = message.SerializeToString()
    known = _fixed_parts.get(wire)
    if known is not None:
        return known
    fixed = _fixed_part_from_proto(message, path)
    _fixed_parts.keep(wire, fixed)
    return fixed


def _fixed_part_from_proto(message: nitro_pb2.FixedPart, path: str) -> FixedPart:
    participants = [
        address_from_bytes(raw, f"{path}.participants[{index}]")
        for index, raw in enumerate(message.participants)
    ]
    app_definition = address_from_bytes(message.app_definition, f"{path}.app_definition")
    return _decoded(
        path,
        lambda: FixedPart(
            participants, message.channel_nonce, app_definition, message.challenge_duration
        ),
    )


# Outcome


def allocation_to_proto(allocation: Allocation) -> nitro_pb2.Allocation:
    """The wire form of ``allocation``."""
    return nitro_pb2.Allocation(
        destination=allocation.destination,
        amount=uint256_to_bytes(allocation.amount),
        allocation_type=allocation.allocation_type,
        metadata=allocation.metadata,
    )


def allocation_from_proto(message: nitro_pb2.Allocation, path: str = "allocation") -> Allocation:
    """Decode and validate an Allocation; errors name ``path``.field."""
    with _at(path):
        return _allocation(
            message.destination, message.amount, message.allocation_type, message.metadata
        )


# Cached by its wire fields: a ledger state repeats every allocation of the turn before
# but one. Errors are not cached (they name fields relative to the allocation).
@functools.lru_cache(maxsize=1 << 16)
def _allocation(
    destination: bytes, amount: bytes, allocation_type: int, metadata: bytes
) -> Allocation:
    return Allocation(destination, uint256_from_bytes(amount, "amount"), allocation_type, metadata)


def single_asset_exit_to_proto(exit_: SingleAssetExit) -> nitro_pb2.SingleAssetExit:
    """The wire form of one asset's exit."""
    return nitro_pb2.SingleAssetExit(
        asset=address_to_bytes(exit_.asset),
        asset_type=exit_.asset_type,
        asset_metadata=exit_.asset_metadata,
        allocations=[allocation_to_proto(a) for a in exit_.allocations],
    )


def single_asset_exit_from_proto(
    message: nitro_pb2.SingleAssetExit, path: str = "exit"
) -> SingleAssetExit:
    """Decode and validate one asset's exit; errors name ``path``.field."""
    asset = address_from_bytes(message.asset, f"{path}.asset")
    allocations: list[Allocation] = []
    for allocation in message.allocations:
        try:  # no path built, nor context entered, per allocation: only on an error
            allocations.append(
                _allocation(
                    allocation.destination,
                    allocation.amount,
                    allocation.allocation_type,
                    allocation.metadata,
                )
            )
        except InvalidValueError as error:
            field = f"{path}.allocations[{len(allocations)}].{error.field}"
            raise type(error)(field, problem_of(error)) from error
    return _decoded(
        path,
        lambda: SingleAssetExit(asset, allocations, message.asset_type, message.asset_metadata),
    )


# State


def state_to_proto(state: State) -> nitro_pb2.State:
    """The wire form of ``state``."""
    message = nitro_pb2.State(
        fixed=fixed_part_to_proto(state.fixed),
        app_data=state.app_data,
        turn_num=state.turn_num,
        is_final=state.is_final,
    )
    for exit_ in state.outcome:
        message.outcome.add().MergeFromString(_exit_wire(exit_))
    # What we send or log comes back (a channel view, a peer's copy): decoded, it is
    # this value again, with its hash and whatever is kept on it.
    _states.keep(message.SerializeToString(), state)
    return message


def _exit_wire(exit_: SingleAssetExit) -> bytes:
    """One asset's exit serialized from its allocations, each serialized once and kept
    on it (a ledger's outcome repeats all but one of them from the turn before): a
    repeated field on the wire is its elements one after another, each tagged."""
    head = nitro_pb2.SingleAssetExit(
        asset=address_to_bytes(exit_.asset),
        asset_type=exit_.asset_type,
        asset_metadata=exit_.asset_metadata,
    ).SerializeToString()
    return head + b"".join(_allocation_element(a) for a in exit_.allocations)


def _allocation_element(allocation: Allocation) -> bytes:
    """``allocation`` as one tagged element of SingleAssetExit.allocations, cached on it."""
    wire = allocation._wire
    if wire is None:
        body = allocation_to_proto(allocation).SerializeToString()
        wire = _ALLOCATIONS_TAG + _varint(len(body)) + body
        object.__setattr__(allocation, "_wire", wire)
    return wire


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_LENGTH_DELIMITED = 2  # protobuf wire type of bytes and messages
_ALLOCATIONS_TAG = _varint(
    nitro_pb2.SingleAssetExit.DESCRIPTOR.fields_by_name["allocations"].number << 3
    | _LENGTH_DELIMITED
)


def state_from_proto(message: nitro_pb2.State, path: str = "state") -> State:
    """Decode and validate a State; errors name ``path``.field.

    A state decoded before is the same value again (its hash computed once)."""
    wire = message.SerializeToString()
    known = _states.get(wire)
    if known is not None:
        return known
    if not message.HasField("fixed"):
        raise InvalidValueError(f"{path}.fixed", "missing")
    fixed = fixed_part_from_proto(message.fixed, f"{path}.fixed")
    outcome = [
        single_asset_exit_from_proto(exit_, f"{path}.outcome[{index}]")
        for index, exit_ in enumerate(message.outcome)
    ]
    state = _decoded(
        path,
        lambda: State(fixed, message.app_data, outcome, message.turn_num, message.is_final),
    )
    _states.keep(wire, state)
    return state


def signed_state_to_proto(signed_state: SignedState) -> nitro_pb2.SignedState:
    """The wire form of a state and its signatures."""
    return nitro_pb2.SignedState(
        state=state_to_proto(signed_state.state),
        signatures=[
            nitro_pb2.ParticipantSignature(participant_index=index, signature=signature)
            for index, signature in signed_state.signatures
        ],
    )


def signed_state_from_proto(
    message: nitro_pb2.SignedState, path: str = "signed_state"
) -> SignedState:
    """Decode a SignedState, checking each signature's shape (not its signer).

    Errors name ``path``.field; a signature's field is ``signatures[i]``, i
    being its participant index.
    """
    wire = message.SerializeToString()
    known = _signed_states.get(wire)
    if known is not None:
        return known
    if not message.HasField("state"):
        raise InvalidValueError(f"{path}.state", "missing")
    state = state_from_proto(message.state, f"{path}.state")
    pairs = [(entry.participant_index, entry.signature) for entry in message.signatures]
    signed = _decoded(path, lambda: SignedState(state, pairs))
    _signed_states.keep(wire, signed)
    return signed


# Payments and guarantees


def voucher_to_proto(voucher: Voucher) -> nitro_pb2.Voucher:
    """The wire form of ``voucher``."""
    return nitro_pb2.Voucher(
        channel_id=voucher.channel_id,
        amount=uint256_to_bytes(voucher.amount),
        signature=voucher.signature,
    )


def voucher_from_proto(message: nitro_pb2.Voucher, path: str = "voucher") -> Voucher:
    """Decode a Voucher, checking its signature's shape (not its signer)."""
    amount = uint256_from_bytes(message.amount, f"{path}.amount")
    return _decoded(path, lambda: Voucher(message.channel_id, amount, message.signature))


def guarantee_to_proto(guarantee: Guarantee) -> nitro_pb2.Guarantee:
    """The wire form of ``guarantee``."""
    return nitro_pb2.Guarantee(
        target=guarantee.target,
        amount=uint256_to_bytes(guarantee.amount),
        left=guarantee.left,
        right=guarantee.right,
    )


def guarantee_from_proto(message: nitro_pb2.Guarantee, path: str = "guarantee") -> Guarantee:
    """Decode and validate a Guarantee; errors name ``path``.field."""
    amount = uint256_from_bytes(message.amount, f"{path}.amount")
    return _decoded(path, lambda: Guarantee(message.target, amount, message.left, message.right))
