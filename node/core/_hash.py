"""keccak256, the one hash function of Nitro ids, state hashes and addresses.

safe-pysha3's C keccak: a new hash object costs about a microsecond there, seven
times less than pycryptodome's, and a node hashes small inputs (vouchers, prefixed
digests) at every payment and signature.
"""

from __future__ import annotations

import sha3

_ETHEREUM_PREFIX = b"\x19Ethereum Signed Message:\n32"


def keccak256(data: bytes) -> bytes:
    """The 32-byte keccak256 digest of ``data`` (Ethereum's, not SHA3-256)."""
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


def ethereum_message_hash(digest: bytes) -> bytes:
    """keccak256 of the Ethereum signed-message prefix and a 32-byte ``digest``.

    This is what a Nitro participant actually signs (``ecrecover`` on chain
    checks the same prefixed hash).
    """
    assert len(digest) == 32
    prefixed: bytes = sha3.keccak_256(_ETHEREUM_PREFIX + digest).digest()
    return prefixed
