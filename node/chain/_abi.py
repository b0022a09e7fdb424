"""Nitro values as the adjudicator's ABI tuples, and back to protobuf.

Pure functions. On chain a VariablePart is ``(outcome, appData, turnNum,
isFinal)`` and a signature ``(v, r, s)`` (PROTOCOL.md §4).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_abi.abi import encode as abi_encode

from node.core import SignedState, SingleAssetExit, State, constants, keccak256
from node.core.errors import InvalidValueError
from node.proto import nitro_pb2

EXIT_ABI = "(address,(uint8,bytes),(bytes32,uint256,uint8,bytes)[])[]"

AllocationTuple = tuple[bytes, int, int, bytes]
ExitTuple = tuple[str, tuple[int, bytes], list[AllocationTuple]]
FixedTuple = tuple[list[str], int, str, int]
VariableTuple = tuple[list[ExitTuple], bytes, int, bool]
SignatureTuple = tuple[int, bytes, bytes]
SignedVariableTuple = tuple[VariableTuple, list[SignatureTuple]]


def outcome_tuple(outcome: Sequence[SingleAssetExit]) -> list[ExitTuple]:
    """The ABI form of an outcome (``Exit``)."""
    return [
        (
            exit_.asset,
            (exit_.asset_type, exit_.asset_metadata),
            [(a.destination, a.amount, a.allocation_type, a.metadata) for a in exit_.allocations],
        )
        for exit_ in outcome
    ]


def fixed_part_tuple(state: State) -> FixedTuple:
    """The ABI form of the state's fixed part."""
    fixed = state.fixed
    return (
        list(fixed.participants),
        fixed.channel_nonce,
        fixed.app_definition,
        fixed.challenge_duration,
    )


def variable_part_tuple(state: State) -> VariableTuple:
    """The ABI form of the state's variable part."""
    return (outcome_tuple(state.outcome), state.app_data, state.turn_num, state.is_final)


def signature_tuple(signature: bytes) -> SignatureTuple:
    """``r || s || v`` as the on-chain ``(v, r, s)``."""
    if len(signature) != constants.signature_bytes:
        raise InvalidValueError(
            "signature", f"expected {constants.signature_bytes} bytes, got {len(signature)}"
        )
    return (signature[64], signature[:32], signature[32:64])


def signed_variable_part(signed: SignedState) -> SignedVariableTuple:
    """The ABI form of a signed state: its variable part and signatures by participant order."""
    return (
        variable_part_tuple(signed.state),
        [signature_tuple(signature) for _, signature in signed.signatures],
    )


def encode_outcome(outcome: Sequence[ExitTuple]) -> bytes:
    """``abi.encode(outcome)``: what ``transfer`` and ``reclaim`` take as outcome bytes."""
    return abi_encode([EXIT_ABI], [list(outcome)])


def state_hash_of(fixed: Sequence[Any], variable: Sequence[Any]) -> bytes:
    """The state hash of ABI-form parts (any allocation type, unlike ``node.core``)."""
    channel = keccak256(abi_encode(["address[]", "uint256", "address", "uint256"], list(fixed)))
    outcome, app_data, turn_num, is_final = variable
    return keccak256(
        abi_encode(
            ["bytes32", "bytes", EXIT_ABI, "uint256", "bool"],
            [channel, app_data, outcome, turn_num, is_final],
        )
    )


def _field(value: Any, name: str, index: int) -> Any:
    """A struct field from web3's decoded form (a mapping by name, or a tuple)."""
    if isinstance(value, Mapping):
        return value[name]
    return value[index]


def _address_bytes(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))


def exit_proto(decoded: Any) -> nitro_pb2.SingleAssetExit:
    """One decoded ``SingleAssetExit`` as protobuf."""
    metadata = _field(decoded, "assetMetadata", 1)
    message = nitro_pb2.SingleAssetExit(
        asset=_address_bytes(_field(decoded, "asset", 0)),
        asset_type=_field(metadata, "assetType", 0),
        asset_metadata=bytes(_field(metadata, "metadata", 1)),
    )
    for allocation in _field(decoded, "allocations", 2):
        message.allocations.append(
            nitro_pb2.Allocation(
                destination=bytes(_field(allocation, "destination", 0)),
                amount=int(_field(allocation, "amount", 1)).to_bytes(32, "big"),
                allocation_type=_field(allocation, "allocationType", 2),
                metadata=bytes(_field(allocation, "metadata", 3)),
            )
        )
    return message


def fixed_part_proto(decoded: Any) -> nitro_pb2.FixedPart:
    """A decoded ``FixedPart`` as protobuf."""
    return nitro_pb2.FixedPart(
        participants=[_address_bytes(p) for p in _field(decoded, "participants", 0)],
        channel_nonce=_field(decoded, "channelNonce", 1),
        app_definition=_address_bytes(_field(decoded, "appDefinition", 2)),
        challenge_duration=_field(decoded, "challengeDuration", 3),
    )


def _plain_variable(variable: Any) -> VariableTuple:
    outcome: list[ExitTuple] = []
    for exit_ in _field(variable, "outcome", 0):
        metadata = _field(exit_, "assetMetadata", 1)
        outcome.append(
            (
                _field(exit_, "asset", 0),
                (_field(metadata, "assetType", 0), bytes(_field(metadata, "metadata", 1))),
                [
                    (
                        bytes(_field(a, "destination", 0)),
                        int(_field(a, "amount", 1)),
                        int(_field(a, "allocationType", 2)),
                        bytes(_field(a, "metadata", 3)),
                    )
                    for a in _field(exit_, "allocations", 2)
                ],
            )
        )
    return (
        outcome,
        bytes(_field(variable, "appData", 1)),
        int(_field(variable, "turnNum", 2)),
        bool(_field(variable, "isFinal", 3)),
    )


def variable_part_proto(decoded: Any) -> nitro_pb2.VariablePart:
    """A decoded ``VariablePart`` (as in a ``ChallengeRegistered`` event) as protobuf."""
    plain = _plain_variable(decoded)
    return nitro_pb2.VariablePart(
        outcome=[exit_proto(e) for e in _field(decoded, "outcome", 0)],
        app_data=plain[1],
        turn_num=plain[2],
        is_final=plain[3],
    )


def signature_bytes_of(decoded: Any) -> bytes:
    """A decoded ``Signature`` ``(v, r, s)`` as ``r || s || v`` (65 bytes)."""
    v = int(_field(decoded, "v", 0))
    raw = bytes(_field(decoded, "r", 1)) + bytes(_field(decoded, "s", 2)) + bytes([v % 256])
    assert len(raw) == constants.signature_bytes
    return raw


def candidate_parts(signed_variable: Any) -> tuple[nitro_pb2.VariablePart, list[bytes]]:
    """A decoded ``SignedVariablePart`` as its variable part and its signatures
    (``r || s || v``, in the order given): all a ``ChallengeRegistered`` event
    says of its candidate, the fixed part being the channel's."""
    variable = variable_part_proto(_field(signed_variable, "variablePart", 0))
    signatures = [signature_bytes_of(sig) for sig in _field(signed_variable, "sigs", 1)]
    return variable, signatures


def signed_state_proto(fixed: Any, signed_variable: Any) -> nitro_pb2.SignedState:
    """A decoded ``(FixedPart, SignedVariablePart)`` as a protobuf SignedState.

    Each signature is attributed to the participant it recovers to; one that
    recovers to no participant is left out.
    """
    variable = _field(signed_variable, "variablePart", 0)
    plain = _plain_variable(variable)
    fixed_plain = [
        list(_field(fixed, "participants", 0)),
        _field(fixed, "channelNonce", 1),
        _field(fixed, "appDefinition", 2),
        _field(fixed, "challengeDuration", 3),
    ]
    state = nitro_pb2.State(
        fixed=fixed_part_proto(fixed),
        app_data=plain[1],
        outcome=[exit_proto(e) for e in _field(variable, "outcome", 0)],
        turn_num=plain[2],
        is_final=plain[3],
    )
    digest = state_hash_of(fixed_plain, plain)
    participants = [_address_bytes(p) for p in fixed_plain[0]]
    message = nitro_pb2.SignedState(state=state)
    for sig in _field(signed_variable, "sigs", 1):
        raw = signature_bytes_of(sig)
        signer = recover_signer(digest, raw)
        if signer in participants:
            message.signatures.append(
                nitro_pb2.ParticipantSignature(
                    participant_index=participants.index(signer), signature=raw
                )
            )
    return message


def recover_signer(digest: bytes, signature: bytes) -> bytes | None:
    """The 20-byte address whose ``r || s || v`` signature this is over the
    Ethereum signed-message hash of ``digest``; None when nothing recovers."""
    if len(signature) != constants.signature_bytes or signature[64] not in (27, 28):
        return None
    prefixed = keccak256(b"\x19Ethereum Signed Message:\n32" + digest)
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), prefixed, hasher=None
        )
    except ValueError:
        return None
    return keccak256(public.format(compressed=False)[1:])[12:]


def sign_state_tuples(fixed: Sequence[Any], variable: Sequence[Any], private_key: bytes) -> bytes:
    """A participant's ``r || s || v`` signature on ABI-form parts.

    For states ``node.core`` cannot express (e.g. an exit-format guarantee,
    allocation type 2); otherwise use ``node.core.sign_state``.
    """

    prefixed = keccak256(b"\x19Ethereum Signed Message:\n32" + state_hash_of(fixed, variable))
    raw = PrivateKey(private_key).sign_recoverable(prefixed, hasher=None)
    return raw[:64] + bytes([raw[64] + 27])
