"""secp256k1 signatures over Nitro hashes, Ethereum style (PROTOCOL.md §1).

A signature is ``r(32) || s(32) || v(1)`` with v in {27, 28}, made with
RFC 6979 nonces and low-S over keccak256 of the Ethereum signed-message
prefix and the 32-byte hash.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from coincurve import PrivateKey, PublicKey

from node.core import constants
from node.core._address import checksum_of
from node.core._encoding import challenge_hash, state_hash, voucher_hash
from node.core._hash import ethereum_message_hash, keccak256
from node.core._types import SignedState, State, Voucher
from node.core._validate import SECP256K1_HALF_N, SECP256K1_N, check_bytes, check_signature
from node.core.errors import InvalidSignatureError, InvalidValueError

_V_OFFSET = 27
_ZERO_ADDRESS = bytes(constants.address_bytes)


def _check_private_key(private_key: object) -> bytes:
    key = check_bytes(private_key, "private_key")
    if len(key) != constants.private_key_bytes:
        raise InvalidValueError(
            "private_key", f"expected {constants.private_key_bytes} bytes, got {len(key)}"
        )
    if not 0 < int.from_bytes(key, "big") < SECP256K1_N:
        raise InvalidValueError("private_key", "not in [1, secp256k1 order)")
    return key


@functools.lru_cache(maxsize=16)
def _key_object(key: bytes) -> PrivateKey:
    # Building a PrivateKey derives its public key (two point multiplications,
    # as slow as a signature): keep the few keys a node uses.
    return PrivateKey(key)


def _sign_digest(digest: bytes, key: PrivateKey) -> bytes:
    raw = key.sign_recoverable(ethereum_message_hash(digest), hasher=None)
    signature = raw[:64] + bytes((raw[64] + _V_OFFSET,))
    assert len(signature) == constants.signature_bytes
    assert int.from_bytes(signature[32:64], "big") <= SECP256K1_HALF_N, "libsecp256k1 is low-S"
    return signature


def _recover_digest_signer(digest: bytes, signature: object, field_name: str) -> str:
    checked = check_signature(signature, field_name)
    recoverable = checked[:64] + bytes((checked[64] - _V_OFFSET,))
    try:
        public_key = PublicKey.from_signature_and_message(
            recoverable, ethereum_message_hash(digest), hasher=None
        )
    except ValueError as error:
        raise InvalidSignatureError(field_name, "recovers no public key") from error
    raw = _address_of_public_key(public_key.format(compressed=False))
    return signer_address(raw, field_name)


@functools.lru_cache(maxsize=4096)
def _address_of_public_key(public_key: bytes) -> bytes:
    # Cached: a channel's few signers recover again and again, and this keccak
    # is a tenth of a recovery's cost.
    assert len(public_key) == 65
    return keccak256(public_key[1:])[12:]


def signer_address(raw: bytes, field_name: str = "signature") -> str:
    """The checksummed form of a recovered 20-byte address.

    Raises:
        InvalidSignatureError: the address is zero, which ``ecrecover`` uses
            for failure, so the adjudicator would never accept it.
    """
    if raw == _ZERO_ADDRESS:
        raise InvalidSignatureError(field_name, "recovers to the zero address")
    return checksum_of(raw)


def sign_state(state: State, private_key: bytes) -> bytes:
    """A participant's 65-byte signature on ``state_hash(state)``."""
    return _sign_digest(state_hash(state), _key_object(_check_private_key(private_key)))


def recover_state_signer(state: State, signature: bytes) -> str:
    """The checksummed address that signed ``state``.

    Raises:
        InvalidSignatureError: the signature is malformed or recovers no address.
    """
    return _state_signer(state_hash(state), signature, "signature")


# Signers of state signatures recovered (or made) before, by digest and signature: a
# peer sends a state with every signature it holds, ours and those we checked already.
# A pure function's results; the bound caps memory.
_STATE_SIGNERS_KEPT_MAX = 16384
_state_signers: dict[tuple[bytes, bytes], str] = {}


def _state_signer(digest: bytes, signature: bytes, field_name: str) -> str:
    known = _state_signers.get((digest, signature))
    if known is not None:
        return known
    signer = _recover_digest_signer(digest, signature, field_name)
    _keep_state_signer(digest, signature, signer)
    return signer


def _keep_state_signer(digest: bytes, signature: bytes, signer: str) -> None:
    if len(_state_signers) >= _STATE_SIGNERS_KEPT_MAX:
        del _state_signers[next(iter(_state_signers))]  # the oldest
    _state_signers[(digest, signature)] = signer


def sign_voucher(channel_id: bytes, amount: int, private_key: bytes) -> bytes:
    """The payer's signature on ``voucher_hash(channel_id, amount)``."""
    digest = voucher_hash(channel_id, amount)
    return _sign_digest(digest, _key_object(_check_private_key(private_key)))


def recover_voucher_signer(channel_id: bytes, amount: int, signature: bytes) -> str:
    """The checksummed address that signed a voucher for ``amount`` on ``channel_id``.

    Raises:
        InvalidValueError: bad channel id or amount.
        InvalidSignatureError: the signature is malformed or recovers no address.
    """
    return _recover_digest_signer(voucher_hash(channel_id, amount), signature, "signature")


def recover_voucher(voucher: Voucher) -> str:
    """The checksummed address that signed ``voucher``."""
    return recover_voucher_signer(voucher.channel_id, voucher.amount, voucher.signature)


def sign_challenge(state: State, private_key: bytes) -> bytes:
    """A challenger's signature on ``challenge_hash(state)`` (the forceMove message)."""
    return _sign_digest(challenge_hash(state), _key_object(_check_private_key(private_key)))


def recover_challenge_signer(state: State, signature: bytes) -> str:
    """The checksummed address that signed a challenge on ``state``."""
    return _recover_digest_signer(challenge_hash(state), signature, "signature")


def verify_signed_state(signed_state: SignedState) -> None:
    """Check that each signature was made by the participant at its index.

    Raises:
        InvalidSignatureError: a signature is by someone else or recovers nothing;
            the field names its index (``signatures[i]``).
    """
    participants = signed_state.state.fixed.participants
    digest = state_hash(signed_state.state)
    for index, signature in signed_state.signatures:
        field_name = f"signatures[{index}]"
        signer = _state_signer(digest, signature, field_name)
        if signer != participants[index]:
            raise InvalidSignatureError(
                field_name, f"signed by {signer}, not by participant {participants[index]}"
            )


@dataclass(frozen=True)
class Signer:
    """A private key and its address: what protocol code signs with.

    The key never shows in ``repr``.

    Attributes:
        private_key: the 32-byte secp256k1 secret.
        address: its checksummed Ethereum address.
    """

    private_key: bytes = field(repr=False)
    address: str = field(init=False)
    _key: PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = _check_private_key(self.private_key)
        key_object = PrivateKey(key)
        public = key_object.public_key.format(compressed=False)[1:]
        object.__setattr__(self, "private_key", key)
        object.__setattr__(self, "_key", key_object)
        object.__setattr__(self, "address", checksum_of(keccak256(public)[12:]))

    def sign_state(self, state: State) -> bytes:
        """This signer's signature on ``state``."""
        digest = state_hash(state)
        signature = _sign_digest(digest, self._key)
        _keep_state_signer(digest, signature, self.address)
        return signature

    def sign_voucher(self, channel_id: bytes, amount: int) -> bytes:
        """This signer's signature on a voucher for ``amount`` on ``channel_id``."""
        return _sign_digest(voucher_hash(channel_id, amount), self._key)

    def sign_challenge(self, state: State) -> bytes:
        """This signer's challenge signature on ``state``."""
        return _sign_digest(challenge_hash(state), self._key)

    def voucher(self, channel_id: bytes, amount: int) -> Voucher:
        """A signed voucher paying ``amount`` in total on ``channel_id``."""
        return Voucher(channel_id, amount, self.sign_voucher(channel_id, amount))

    def countersign(self, signed_state: SignedState) -> SignedState:
        """``signed_state`` with this signer's signature added at its participant index.

        Raises:
            InvalidValueError: this signer is not a participant of the channel.
        """
        participants = signed_state.state.fixed.participants
        if self.address not in participants:
            raise InvalidValueError(
                "participants", f"{self.address} is not a participant of the channel"
            )
        index = participants.index(self.address)
        return signed_state.with_signature(index, self.sign_state(signed_state.state))
