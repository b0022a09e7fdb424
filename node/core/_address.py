"""Ethereum addresses (EIP-55 checksums) and 32-byte Nitro destinations."""

from __future__ import annotations

import functools

from node.core import constants
from node.core._hash import keccak256
from node.core._validate import check_bytes, check_bytes32, problem_of
from node.core.errors import InvalidValueError

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_ADDRESS_HEX_CHARS = 2 * constants.address_bytes
_EXTERNAL_PREFIX = bytes(constants.external_destination_prefix_bytes)


def address_from_bytes(raw: bytes, field: str = "address") -> str:
    """The EIP-55 checksummed form of a 20-byte address.

    Raises:
        InvalidValueError: ``raw`` is not 20 bytes.
    """
    raw = check_bytes(raw, field)
    if len(raw) != constants.address_bytes:
        raise InvalidValueError(field, f"expected {constants.address_bytes} bytes, got {len(raw)}")
    return checksum_of(raw)


@functools.lru_cache(maxsize=65536)
def checksum_of(raw: bytes) -> str:
    """EIP-55 form of 20 bytes the caller has checked.

    Cached: the same few addresses (participants, payers) come back on every
    state and voucher.
    """
    assert len(raw) == constants.address_bytes
    lower = raw.hex()
    nibbles = keccak256(lower.encode("ascii")).hex()[: len(lower)]
    # EIP-55: upper-case a letter when the matching nibble of the hash is >= 8.
    return "0x" + "".join(
        char.upper() if nibble >= "8" else char for char, nibble in zip(lower, nibbles, strict=True)
    )


def to_checksum_address(address: str | bytes, field: str = "address") -> str:
    """Validate an address and return its EIP-55 checksummed form.

    Accepts 20 raw bytes or ``0x`` + 40 hex digits. All-lowercase and
    all-uppercase hex carry no checksum and are accepted; mixed case must be a
    correct EIP-55 checksum.

    Args:
        address: the address to check.
        field: the name reported in errors.

    Raises:
        InvalidValueError: wrong type, length, hex, or a bad checksum.
    """
    if isinstance(address, bytes | bytearray | memoryview):
        return address_from_bytes(bytes(address), field)
    if not isinstance(address, str):
        raise InvalidValueError(field, f"expected an address, got {type(address).__name__}")
    return checksum_of(_parse_hex(address, field))


def address_to_bytes(address: str, field: str = "address") -> bytes:
    """The 20 raw bytes of a validated address (see ``to_checksum_address``)."""
    if not isinstance(address, str):
        raise InvalidValueError(field, f"expected an address, got {type(address).__name__}")
    return _parse_hex(address, field)


def is_address(value: object) -> bool:
    """Whether ``value`` is a valid address string (hex, right length, good checksum)."""
    if not isinstance(value, str):
        return False
    try:
        _parse_hex(value, "address")
    except InvalidValueError:
        return False
    return True


def _parse_hex(address: str, field: str) -> bytes:
    try:
        return _address_bytes(address)
    except InvalidValueError as error:
        raise InvalidValueError(field, problem_of(error)) from None


@functools.lru_cache(maxsize=65536)
def _address_bytes(address: str) -> bytes:
    """The 20 bytes of a valid address text (cached, as ``checksum_of``: the same
    participants come back in every state, voucher and ledger proposal).

    Raises:
        InvalidValueError: of field ``address`` (not cached: only values are).
    """
    if not address.startswith("0x"):
        raise InvalidValueError("address", f"{address!r} does not start with 0x")
    body = address[2:]
    if len(body) != _ADDRESS_HEX_CHARS:
        raise InvalidValueError(
            "address", f"expected {_ADDRESS_HEX_CHARS} hex digits, got {len(body)}"
        )
    if not _HEX_DIGITS.issuperset(body):
        raise InvalidValueError("address", f"{address!r} is not hexadecimal")
    raw = bytes.fromhex(body)
    if body != body.lower() and body != body.upper():
        expected = checksum_of(raw)
        if address != expected:
            raise InvalidValueError(
                "address", f"{address!r} has a bad EIP-55 checksum (expected {expected})"
            )
    return raw


def address_to_destination(address: str, field: str = "address") -> bytes:
    """An address as a 32-byte destination: left-padded with 12 zero bytes."""
    return _EXTERNAL_PREFIX + address_to_bytes(address, field)


def is_external_destination(destination: bytes) -> bool:
    """Whether a 32-byte destination is an address (first 12 bytes zero), not a channel.

    Raises:
        InvalidValueError: ``destination`` is not 32 bytes.
    """
    data = check_bytes32(destination, "destination")
    return data[: constants.external_destination_prefix_bytes] == _EXTERNAL_PREFIX


def destination_to_address(destination: bytes, field: str = "destination") -> str:
    """The checksummed address inside an external destination.

    Raises:
        InvalidValueError: not 32 bytes, or not external-shaped (a channel id).
    """
    data = check_bytes32(destination, field)
    if data[: constants.external_destination_prefix_bytes] != _EXTERNAL_PREFIX:
        raise InvalidValueError(
            field, "first 12 bytes are not zero: a channel id, not an external address"
        )
    return checksum_of(data[constants.external_destination_prefix_bytes :])
