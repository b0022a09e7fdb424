"""keccak256, the one hash function of Nitro ids, state hashes and addresses."""

from __future__ import annotations

from Crypto.Hash import keccak

_ETHEREUM_PREFIX = b"\x19Ethereum Signed Message:\n32"


def keccak256(data: bytes) -> bytes:
    """The 32-byte keccak256 digest of ``data`` (Ethereum's, not SHA3-256)."""
    return keccak.new(digest_bits=256, data=data).digest()


def ethereum_message_hash(digest: bytes) -> bytes:
    """keccak256 of the Ethereum signed-message prefix and a 32-byte ``digest``.

    This is what a Nitro participant actually signs (``ecrecover`` on chain
    checks the same prefixed hash).
    """
    assert len(digest) == 32
    return keccak.new(digest_bits=256, data=_ETHEREUM_PREFIX + digest).digest()
