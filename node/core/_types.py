"""Nitro values: FixedPart, Allocation, SingleAssetExit, State, SignedState, Voucher.

All are frozen dataclasses, validated on construction. List fields are stored
as tuples so that values hash; addresses are stored in EIP-55 form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from node.core import constants
from node.core._address import to_checksum_address
from node.core._validate import (
    check_bool,
    check_bytes,
    check_bytes32,
    check_channel_id,
    check_signature,
    check_uint,
)
from node.core.errors import InvalidValueError

_T = TypeVar("_T")


@dataclass(frozen=True)
class FixedPart:
    """The part of a channel's state that never changes; it defines the channel id.

    Attributes:
        participants: signers' addresses, in order (payer first, payee last).
        channel_nonce: uint64 that makes the id unique among the same parties.
        app_definition: address of the app contract that rules transitions.
        challenge_duration: seconds a challenge stays open (uint48).
    """

    participants: tuple[str, ...]
    channel_nonce: int
    app_definition: str
    challenge_duration: int
    # Filled on first use by channel_id(); not part of equality.
    _channel_id: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(
        self,
        participants: Sequence[str],
        channel_nonce: int,
        app_definition: str,
        challenge_duration: int,
    ) -> None:
        if isinstance(participants, str | bytes) or not isinstance(participants, Iterable):
            raise InvalidValueError("participants", "expected a list of addresses")
        given = tuple(participants)
        if not constants.participants_min <= len(given) <= constants.participants_max:
            raise InvalidValueError(
                "participants",
                f"{len(given)} participants, expected {constants.participants_min}"
                f" to {constants.participants_max}",
            )
        checked = tuple(
            to_checksum_address(participant, f"participants[{index}]")
            for index, participant in enumerate(given)
        )
        setter = object.__setattr__
        setter(self, "participants", checked)
        setter(
            self,
            "channel_nonce",
            check_uint(channel_nonce, "channel_nonce", constants.channel_nonce_max),
        )
        setter(self, "app_definition", to_checksum_address(app_definition, "app_definition"))
        setter(
            self,
            "challenge_duration",
            check_uint(
                challenge_duration, "challenge_duration", constants.challenge_duration_s_max
            ),
        )
        setter(self, "_channel_id", None)


@dataclass(frozen=True)
class Allocation:
    """A payout of one asset to one destination.

    Attributes:
        destination: 32 bytes: an address left-padded with zeros, or a channel id.
        amount: uint256.
        allocation_type: 0 simple, 2 guarantee (the exit format's numbering).
        metadata: for a guarantee, left (32 bytes) || right (32 bytes).
    """

    destination: bytes
    amount: int
    allocation_type: int = constants.allocation_type_simple
    metadata: bytes = b""
    # Filled on first use by the ABI encoder and the protobuf codec; not part of
    # equality. A ledger state repeats all but one of its allocations from the turn before.
    _abi: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "destination", check_bytes32(self.destination, "destination"))
        setter(self, "amount", check_uint(self.amount, "amount", constants.uint256_max))
        allocation_type = check_uint(self.allocation_type, "allocation_type", constants.uint8_max)
        if allocation_type not in (
            constants.allocation_type_simple,
            constants.allocation_type_guarantee,
        ):
            raise InvalidValueError(
                "allocation_type", f"{allocation_type} is neither 0 (simple) nor 2 (guarantee)"
            )
        setter(self, "allocation_type", allocation_type)
        metadata = check_bytes(self.metadata, "metadata")
        if (
            allocation_type == constants.allocation_type_guarantee
            and len(metadata) != constants.guarantee_metadata_bytes
        ):
            raise InvalidValueError(
                "metadata",
                f"guarantee metadata must be {constants.guarantee_metadata_bytes} bytes,"
                f" got {len(metadata)}",
            )
        setter(self, "metadata", metadata)


@dataclass(frozen=True)
class SingleAssetExit:
    """How one asset is paid out when the channel closes.

    Attributes:
        asset: token address; the zero address is the chain's native coin.
        allocations: payouts, in priority order.
        asset_type: uint8, 0 in practice.
        asset_metadata: empty in practice.
    """

    asset: str
    allocations: tuple[Allocation, ...]
    asset_type: int = 0
    asset_metadata: bytes = b""

    def __init__(
        self,
        asset: str,
        allocations: Sequence[Allocation],
        asset_type: int = 0,
        asset_metadata: bytes = b"",
    ) -> None:
        setter = object.__setattr__
        setter(self, "asset", to_checksum_address(asset, "asset"))
        setter(self, "allocations", _tuple_of(allocations, Allocation, "allocations"))
        setter(self, "asset_type", check_uint(asset_type, "asset_type", constants.asset_type_max))
        setter(self, "asset_metadata", check_bytes(asset_metadata, "asset_metadata"))


@dataclass(frozen=True)
class State:
    """A channel state: the fixed part plus the variable part.

    Attributes:
        fixed: the channel's fixed part.
        app_data: app-specific bytes.
        outcome: the exit, one entry per asset.
        turn_num: uint48; 0 prefund, 1 postfund.
        is_final: whether this state closes the channel.
    """

    fixed: FixedPart
    app_data: bytes
    outcome: tuple[SingleAssetExit, ...]
    turn_num: int
    is_final: bool
    # Filled on first use by state_hash() and pays(); not part of equality.
    _state_hash: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _destinations: frozenset[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __init__(
        self,
        fixed: FixedPart,
        app_data: bytes,
        outcome: Sequence[SingleAssetExit],
        turn_num: int,
        is_final: bool,
    ) -> None:
        if not isinstance(fixed, FixedPart):
            raise InvalidValueError("fixed", f"expected a FixedPart, got {type(fixed).__name__}")
        setter = object.__setattr__
        setter(self, "fixed", fixed)
        setter(self, "app_data", check_bytes(app_data, "app_data"))
        setter(self, "outcome", _tuple_of(outcome, SingleAssetExit, "outcome"))
        setter(self, "turn_num", check_uint(turn_num, "turn_num", constants.turn_num_max))
        setter(self, "is_final", check_bool(is_final, "is_final"))
        setter(self, "_state_hash", None)
        setter(self, "_destinations", None)

    def pays(self, destination: bytes) -> bool:
        """Whether an allocation of the outcome, in any asset, goes to ``destination``
        (a ledger's guarantees are looked up often, and there may be many)."""
        if self._destinations is None:
            destinations = frozenset(
                allocation.destination
                for asset_exit in self.outcome
                for allocation in asset_exit.allocations
            )
            object.__setattr__(self, "_destinations", destinations)
        assert self._destinations is not None
        return destination in self._destinations


@dataclass(frozen=True)
class SignedState:
    """A state with the signatures collected so far, by participant index.

    Only the shape of each signature is checked here; ``verify_signed_state``
    checks who signed.

    Attributes:
        state: the signed state.
        signatures: ``(participant index, signature)`` pairs, sorted by index.
    """

    state: State
    signatures: tuple[tuple[int, bytes], ...] = ()

    def __init__(
        self,
        state: State,
        signatures: Mapping[int, bytes] | Iterable[tuple[int, bytes]] = (),
    ) -> None:
        if not isinstance(state, State):
            raise InvalidValueError("state", f"expected a State, got {type(state).__name__}")
        pairs = signatures.items() if isinstance(signatures, Mapping) else signatures
        count = len(state.fixed.participants)
        checked: dict[int, bytes] = {}
        for pair in pairs:
            index = pair[0]
            if type(index) is not int or not 0 <= index < count:
                raise InvalidValueError(
                    "signatures", f"participant index {index!r} is not in [0, {count})"
                )
            if index in checked:
                raise InvalidValueError(f"signatures[{index}]", "participant signed twice")
            checked[index] = check_signature(pair[1], f"signatures[{index}]")
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "signatures", tuple(sorted(checked.items())))

    def signature_of(self, index: int) -> bytes | None:
        """The signature of participant ``index``, or None if it has not signed."""
        for signer_index, signature in self.signatures:
            if signer_index == index:
                return signature
        return None

    @property
    def signer_indices(self) -> frozenset[int]:
        """Indices of the participants who have signed."""
        return frozenset(index for index, _ in self.signatures)

    def with_signature(self, index: int, signature: bytes) -> SignedState:
        """A copy with participant ``index``'s signature added.

        Raises:
            InvalidValueError: that participant already gave a different signature.
        """
        existing = self.signature_of(index)
        if existing is not None:
            if existing != signature:
                raise InvalidValueError(
                    f"signatures[{index}]", "participant already gave another signature"
                )
            return self
        return SignedState(self.state, (*self.signatures, (index, signature)))


@dataclass(frozen=True)
class Voucher:
    """A payment: the cumulative amount the payer has paid on a channel.

    Attributes:
        channel_id: the (virtual) channel paid on.
        amount: uint256, total paid so far.
        signature: the payer's signature over the voucher hash.
    """

    channel_id: bytes
    amount: int
    signature: bytes

    def __post_init__(self) -> None:
        setter = object.__setattr__
        setter(self, "channel_id", check_channel_id(self.channel_id, "channel_id"))
        setter(self, "amount", check_uint(self.amount, "amount", constants.uint256_max))
        setter(self, "signature", check_signature(self.signature, "signature"))


def _tuple_of(values: object, kind: type[_T], field_name: str) -> tuple[_T, ...]:
    """``values`` as a tuple, each item checked to be a ``kind``."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidValueError(field_name, f"expected a list of {kind.__name__}")
    items = tuple(values)
    for index, item in enumerate(items):
        if not isinstance(item, kind):
            raise InvalidValueError(
                f"{field_name}[{index}]",
                f"expected a {kind.__name__}, got {type(item).__name__}",
            )
    return items
