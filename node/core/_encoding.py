"""ABI encodings and hashes of Nitro values (PROTOCOL.md §1).

The encoder below writes the Solidity ABI layout of the few Nitro types
directly: eth-abi builds the same bytes (the tests check it on random values)
but is about thirty times slower, and states are hashed on every signature.
"""

from __future__ import annotations

from collections.abc import Sequence

from node.core import constants
from node.core._hash import keccak256
from node.core._types import Allocation, FixedPart, SingleAssetExit, State
from node.core._validate import check_channel_id, check_uint

_WORD = 32
_ZERO_WORD = bytes(_WORD)
_ADDRESS_PAD = bytes(_WORD - constants.address_bytes)
_FORCE_MOVE = b"forceMove"


def _word(value: int) -> bytes:
    return value.to_bytes(_WORD, "big")


def _address_word(address: str) -> bytes:
    # Values hold addresses already validated and checksummed: no need to re-check.
    return _ADDRESS_PAD + bytes.fromhex(address[2:])


def _encode_bytes(data: bytes) -> bytes:
    """A dynamic ``bytes`` tail: length word, then the data right-padded to words."""
    padding = -len(data) % _WORD
    return _word(len(data)) + data + bytes(padding)


def _encode_dynamic_array(elements: Sequence[bytes]) -> bytes:
    """An array of dynamic elements: length, one offset per element, the elements."""
    heads = []
    offset = _WORD * len(elements)
    for element in elements:
        heads.append(_word(offset))
        offset += len(element)
    return _word(len(elements)) + b"".join(heads) + b"".join(elements)


def _encode_allocation(allocation: Allocation) -> bytes:
    # (bytes32 destination, uint256 amount, uint8 allocationType, bytes metadata)
    cached = allocation._abi
    if cached is None:
        cached = b"".join(
            (
                allocation.destination,
                _word(allocation.amount),
                _word(allocation.allocation_type),
                _word(4 * _WORD),
                _encode_bytes(allocation.metadata),
            )
        )
        object.__setattr__(allocation, "_abi", cached)
    return cached


def _encode_single_asset_exit(exit_: SingleAssetExit) -> bytes:
    # (address asset, (uint8 assetType, bytes metadata) assetMetadata, Allocation[] allocations)
    asset_metadata = _word(exit_.asset_type) + _word(2 * _WORD)
    asset_metadata += _encode_bytes(exit_.asset_metadata)
    allocations = _encode_dynamic_array([_encode_allocation(a) for a in exit_.allocations])
    return b"".join(
        (
            _address_word(exit_.asset),
            _word(3 * _WORD),
            _word(3 * _WORD + len(asset_metadata)),
            asset_metadata,
            allocations,
        )
    )


def _encode_exit_body(outcome: Sequence[SingleAssetExit]) -> bytes:
    return _encode_dynamic_array([_encode_single_asset_exit(e) for e in outcome])


def encode_exit(outcome: Sequence[SingleAssetExit]) -> bytes:
    """``abi.encode(exit)``: one argument, so it starts with the offset word 0x20.

    keccak256 of these bytes is the outcome hash the adjudicator stores.
    """
    encoded = _word(_WORD) + _encode_exit_body(outcome)
    assert len(encoded) % _WORD == 0
    return encoded


def channel_id(fixed: FixedPart) -> bytes:
    """keccak256(abi.encode(address[] participants, uint256 channelNonce,
    address appDefinition, uint256 challengeDuration)); cached on ``fixed``.

    Raises:
        InvalidValueError: the id is shaped like an external address (its first
            12 bytes are zero), which Nitro forbids.
    """
    cached = fixed._channel_id
    if cached is not None:
        return cached
    participants = fixed.participants
    encoded = b"".join(
        (
            _word(4 * _WORD),
            _word(fixed.channel_nonce),
            _address_word(fixed.app_definition),
            _word(fixed.challenge_duration),
            _word(len(participants)),
            *(_address_word(participant) for participant in participants),
        )
    )
    digest = check_channel_id(keccak256(encoded), "channel_id")
    object.__setattr__(fixed, "_channel_id", digest)
    return digest


def state_hash(state: State) -> bytes:
    """keccak256(abi.encode(bytes32 channelId, bytes appData, Exit outcome,
    uint256 turnNum, bool isFinal)): five arguments, not one tuple; cached on ``state``.
    """
    cached = state._state_hash
    if cached is not None:
        return cached
    app_data = _encode_bytes(state.app_data)
    encoded = b"".join(
        (
            channel_id(state.fixed),
            _word(5 * _WORD),
            _word(5 * _WORD + len(app_data)),
            _word(state.turn_num),
            _word(1 if state.is_final else 0),
            app_data,
            _encode_exit_body(state.outcome),
        )
    )
    digest = keccak256(encoded)
    object.__setattr__(state, "_state_hash", digest)
    return digest


def voucher_hash(channel_id: bytes, amount: int) -> bytes:
    """keccak256(abi.encode(bytes32 channelId, uint256 amount)).

    Both arguments are static, so the encoding is just the two words.

    Raises:
        InvalidValueError: ``channel_id`` is not a channel id, or ``amount`` is
            not a uint256.
    """
    if type(channel_id) is not bytes or len(channel_id) != _WORD or not any(channel_id[:12]):
        channel_id = check_channel_id(channel_id, "channel_id")
    if type(amount) is not int or not 0 <= amount <= constants.uint256_max:
        amount = check_uint(amount, "amount", constants.uint256_max)
    return keccak256(channel_id + amount.to_bytes(_WORD, "big"))


def challenge_hash(state: State) -> bytes:
    """keccak256(abi.encode(bytes32 stateHash, string "forceMove")).

    This is the message a challenger signs to register a challenge.
    """
    return keccak256(state_hash(state) + _word(2 * _WORD) + _encode_bytes(_FORCE_MOVE))


def outcome_hash(outcome: Sequence[SingleAssetExit]) -> bytes:
    """keccak256(abi.encode(exit)), the outcome hash the adjudicator stores."""
    return keccak256(encode_exit(outcome))
