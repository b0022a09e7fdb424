"""Peer identity: the node's secp256k1 key as a libp2p key pair and peer id.

A peer id of a secp256k1 key embeds the compressed public key (identity
multihash), so the Ethereum address of a peer follows from its peer id alone:
an authenticated libp2p connection proves which address is on the other side.
"""

from __future__ import annotations

import coincurve
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.secp256k1 import Secp256k1PublicKey
from libp2p.crypto.secp256k1 import create_new_key_pair as _secp256k1_key_pair
from libp2p.peer.id import ID

from node.core import address_from_bytes, keccak256
from node.core.constants import address_bytes, p2p_peer_id_chars_max
from node.core.errors import InvalidValueError

_PRIVATE_KEY_BYTES = 32


def key_pair_from_private_key(private_key: bytes) -> KeyPair:
    """The libp2p key pair of a 32-byte secp256k1 private key.

    Raises:
        InvalidValueError: the key is not 32 bytes or outside the curve order.
    """
    if len(private_key) != _PRIVATE_KEY_BYTES:
        raise InvalidValueError("private_key", f"expected 32 bytes, got {len(private_key)}")
    try:
        coincurve.PrivateKey(private_key)
    except ValueError as error:
        raise InvalidValueError("private_key", f"not a secp256k1 key: {error}") from None
    key_pair: KeyPair = _secp256k1_key_pair(private_key)
    return key_pair


def peer_id_from_private_key(private_key: bytes) -> ID:
    """The peer id of a node key (stable: a pure function of the key)."""
    return ID.from_pubkey(key_pair_from_private_key(private_key).public_key)


def address_bytes_from_public_key(public_key: coincurve.PublicKey) -> bytes:
    """The 20-byte Ethereum address of a secp256k1 public key."""
    uncompressed = public_key.format(compressed=False)
    address = keccak256(uncompressed[1:])[-address_bytes:]
    assert len(address) == address_bytes
    return address


def address_bytes_from_private_key(private_key: bytes) -> bytes:
    """The 20-byte Ethereum address of a node key."""
    key_pair_from_private_key(private_key)
    return address_bytes_from_public_key(coincurve.PrivateKey(private_key).public_key)


def address_bytes_from_peer_id(peer_id: ID | str) -> bytes:
    """The 20-byte Ethereum address bound to a secp256k1 peer id.

    Raises:
        InvalidValueError: the peer id is malformed or not a secp256k1 identity.
    """
    if isinstance(peer_id, str):
        if len(peer_id) > p2p_peer_id_chars_max:
            raise InvalidValueError("peer_id", f"longer than {p2p_peer_id_chars_max} characters")
        try:
            peer_id = ID.from_base58(peer_id)
        except Exception as error:  # base58 and multihash raise many kinds
            raise InvalidValueError("peer_id", f"not a base58 peer id: {error}") from None
    try:
        public_key = peer_id.extract_public_key()
    except Exception as error:  # a peer's bytes: protobuf, key parsing
        raise InvalidValueError("peer_id", f"embeds no public key: {error}") from None
    if not isinstance(public_key, Secp256k1PublicKey):
        raise InvalidValueError(
            "peer_id", f"{peer_id.to_base58()} does not embed a secp256k1 public key"
        )
    return address_bytes_from_public_key(public_key.impl)


def address_from_peer_id(peer_id: ID | str) -> str:
    """The EIP-55 Ethereum address bound to a secp256k1 peer id."""
    return checksum_address(address_bytes_from_peer_id(peer_id))


def checksum_address(address: bytes) -> str:
    """EIP-55 text of a 20-byte address."""
    return address_from_bytes(address)


def parse_address(address: str | bytes) -> bytes:
    """A 20-byte address from bytes or 0x-prefixed hex (checksum not required).

    Raises:
        InvalidValueError: not 20 bytes of hex.
    """
    if isinstance(address, bytes):
        raw = address
    else:
        try:
            raw = bytes.fromhex(address.removeprefix("0x"))
        except ValueError:
            raise InvalidValueError("address", f"{address!r} is not hex") from None
    if len(raw) != address_bytes:
        raise InvalidValueError("address", f"expected 20 bytes, got {len(raw)}")
    return raw
