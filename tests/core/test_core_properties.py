"""Property tests: codec round trips, eth-abi agreement, sign/recover, tampering."""

from __future__ import annotations

import dataclasses
from typing import Any

from eth_abi.abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import (
    Allocation,
    FixedPart,
    InvalidSignatureError,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    Voucher,
    address_to_bytes,
    address_to_destination,
    challenge_hash,
    channel_id,
    destination_to_address,
    encode_exit,
    guarantee_from_proto,
    guarantee_to_proto,
    keccak256,
    recover_challenge_signer,
    recover_state_signer,
    recover_voucher,
    recover_voucher_signer,
    sign_challenge,
    sign_state,
    sign_voucher,
    signed_state_from_proto,
    signed_state_to_proto,
    state_from_proto,
    state_hash,
    state_to_proto,
    to_checksum_address,
    verify_signed_state,
    voucher_from_proto,
    voucher_hash,
    voucher_to_proto,
)
from node.proto import nitro_pb2
from tests.core.core_strategies import (
    addresses,
    channel_ids,
    guarantees,
    private_keys,
    single_asset_exits,
    states,
    uint256s,
)

EXIT_TYPE = "(address,(uint8,bytes),(bytes32,uint256,uint8,bytes)[])[]"
SIGNING = settings(max_examples=60, deadline=None)


def exit_values(outcome: tuple[SingleAssetExit, ...]) -> list[Any]:
    """The outcome as the Python values eth-abi encodes for EXIT_TYPE."""
    return [
        (
            exit_.asset,
            (exit_.asset_type, exit_.asset_metadata),
            [(a.destination, a.amount, a.allocation_type, a.metadata) for a in exit_.allocations],
        )
        for exit_ in outcome
    ]


# eth-abi is the reference the direct encoder is checked against.


@settings(deadline=None)
@given(st.lists(single_asset_exits, max_size=3))
def test_encode_exit_matches_eth_abi_and_decodes_back(outcome: list[SingleAssetExit]) -> None:
    encoded = encode_exit(outcome)
    assert encoded[:32] == (32).to_bytes(32, "big")
    assert encoded == encode([EXIT_TYPE], [exit_values(tuple(outcome))])
    (decoded,) = decode([EXIT_TYPE], encoded)
    rebuilt = [
        SingleAssetExit(
            asset,
            [Allocation(*allocation) for allocation in allocations],
            asset_type,
            asset_metadata,
        )
        for asset, (asset_type, asset_metadata), allocations in decoded
    ]
    assert rebuilt == outcome


@settings(deadline=None)
@given(states)
def test_state_hash_and_channel_id_match_eth_abi(state: State) -> None:
    fixed = state.fixed
    expected_id = keccak256(
        encode(
            ["address[]", "uint256", "address", "uint256"],
            [
                list(fixed.participants),
                fixed.channel_nonce,
                fixed.app_definition,
                fixed.challenge_duration,
            ],
        )
    )
    assert channel_id(fixed) == expected_id
    expected_hash = keccak256(
        encode(
            ["bytes32", "bytes", EXIT_TYPE, "uint256", "bool"],
            [
                expected_id,
                state.app_data,
                exit_values(state.outcome),
                state.turn_num,
                state.is_final,
            ],
        )
    )
    assert state_hash(state) == expected_hash
    expected_challenge = keccak256(encode(["bytes32", "string"], [expected_hash, "forceMove"]))
    assert challenge_hash(state) == expected_challenge


@settings(deadline=None)
@given(channel_ids, uint256s)
def test_voucher_hash_matches_eth_abi(channel: bytes, amount: int) -> None:
    assert voucher_hash(channel, amount) == keccak256(
        encode(["bytes32", "uint256"], [channel, amount])
    )


# Codec round trips


@settings(deadline=None)
@given(states)
def test_state_codec_round_trip(state: State) -> None:
    wire = state_to_proto(state).SerializeToString()
    decoded = state_from_proto(nitro_pb2.State.FromString(wire))
    assert decoded == state
    assert hash(decoded) == hash(state)
    assert state_hash(decoded) == state_hash(state)


@SIGNING
@given(states, private_keys)
def test_signed_state_codec_round_trip(state: State, key: bytes) -> None:
    signed = SignedState(state, {len(state.fixed.participants) - 1: sign_state(state, key)})
    wire = signed_state_to_proto(signed).SerializeToString()
    assert signed_state_from_proto(nitro_pb2.SignedState.FromString(wire)) == signed


@SIGNING
@given(channel_ids, uint256s, private_keys)
def test_voucher_codec_round_trip(channel: bytes, amount: int, key: bytes) -> None:
    voucher = Voucher(channel, amount, sign_voucher(channel, amount, key))
    wire = voucher_to_proto(voucher).SerializeToString()
    assert voucher_from_proto(nitro_pb2.Voucher.FromString(wire)) == voucher


@settings(deadline=None)
@given(guarantees)
def test_guarantee_codec_round_trip(guarantee: Any) -> None:
    wire = guarantee_to_proto(guarantee).SerializeToString()
    assert guarantee_from_proto(nitro_pb2.Guarantee.FromString(wire)) == guarantee
    assert type(guarantee).from_allocation(guarantee.to_allocation()) == guarantee


# Sign and recover


@SIGNING
@given(states, private_keys)
def test_state_sign_recover_round_trip(state: State, key: bytes) -> None:
    signer = Signer(key)
    signature = sign_state(state, key)
    assert signer.sign_state(state) == signature
    assert recover_state_signer(state, signature) == signer.address
    challenge = sign_challenge(state, key)
    assert signer.sign_challenge(state) == challenge
    assert recover_challenge_signer(state, challenge) == signer.address


@SIGNING
@given(channel_ids, uint256s, private_keys)
def test_voucher_sign_recover_round_trip(channel: bytes, amount: int, key: bytes) -> None:
    signer = Signer(key)
    voucher = signer.voucher(channel, amount)
    assert voucher.signature == sign_voucher(channel, amount, key)
    assert recover_voucher_signer(channel, amount, voucher.signature) == signer.address
    assert recover_voucher(voucher) == signer.address


@SIGNING
@given(states, st.data())
def test_signed_state_verifies_when_each_participant_signs(state: State, data: Any) -> None:
    keys = data.draw(st.lists(private_keys, min_size=2, max_size=4, unique=True))
    signers = [Signer(key) for key in keys]
    fixed = FixedPart(
        [s.address for s in signers],
        state.fixed.channel_nonce,
        state.fixed.app_definition,
        state.fixed.challenge_duration,
    )
    own = State(fixed, state.app_data, state.outcome, state.turn_num, state.is_final)
    signed = SignedState(own)
    for signer in signers:
        signed = signer.countersign(signed)
    assert signed.signer_indices == frozenset(range(len(signers)))
    verify_signed_state(signed)


# Tampering


def tampered_states(state: State) -> st.SearchStrategy[State]:
    """States that differ from ``state`` in exactly one field."""
    fixed = state.fixed

    def with_fixed(**changes: Any) -> State:
        return dataclasses.replace(state, fixed=dataclasses.replace(fixed, **changes))

    participants = st.lists(addresses, min_size=2, max_size=4).map(tuple)
    options = [
        participants.filter(lambda p: p != fixed.participants).map(
            lambda p: with_fixed(participants=p)
        ),
        st.integers(0, 2**64 - 1)
        .filter(lambda n: n != fixed.channel_nonce)
        .map(lambda n: with_fixed(channel_nonce=n)),
        addresses.filter(lambda a: a != fixed.app_definition).map(
            lambda a: with_fixed(app_definition=a)
        ),
        st.integers(0, 2**48 - 1)
        .filter(lambda d: d != fixed.challenge_duration)
        .map(lambda d: with_fixed(challenge_duration=d)),
        st.binary(max_size=40)
        .filter(lambda b: b != state.app_data)
        .map(lambda b: dataclasses.replace(state, app_data=b)),
        st.lists(single_asset_exits, max_size=2)
        .map(tuple)
        .filter(lambda o: o != state.outcome)
        .map(lambda o: dataclasses.replace(state, outcome=o)),
        st.integers(0, 2**48 - 1)
        .filter(lambda t: t != state.turn_num)
        .map(lambda t: dataclasses.replace(state, turn_num=t)),
        st.just(dataclasses.replace(state, is_final=not state.is_final)),
    ]
    return st.one_of(options)


def recovered_or_none(recover: Any, *arguments: Any) -> str | None:
    try:
        result: str = recover(*arguments)
    except InvalidSignatureError:
        return None
    return result


@SIGNING
@given(states, private_keys, st.data())
def test_tampering_any_state_field_changes_the_signer(state: State, key: bytes, data: Any) -> None:
    signature = sign_state(state, key)
    tampered = data.draw(tampered_states(state))
    assert tampered != state
    assert state_hash(tampered) != state_hash(state)
    assert recovered_or_none(recover_state_signer, tampered, signature) != Signer(key).address


@SIGNING
@given(channel_ids, uint256s, private_keys, st.data())
def test_tampering_a_voucher_changes_the_signer(
    channel: bytes, amount: int, key: bytes, data: Any
) -> None:
    signature = sign_voucher(channel, amount, key)
    address = Signer(key).address
    other_channel = data.draw(channel_ids.filter(lambda c: c != channel))
    other_amount = data.draw(uint256s.filter(lambda a: a != amount))
    assert recovered_or_none(recover_voucher_signer, other_channel, amount, signature) != address
    assert recovered_or_none(recover_voucher_signer, channel, other_amount, signature) != address
    position = data.draw(st.integers(0, 63))
    flipped = bytearray(signature)
    flipped[position] ^= 1 << data.draw(st.integers(0, 7))
    assert recovered_or_none(recover_voucher_signer, channel, amount, bytes(flipped)) != address


@settings(deadline=None)
@given(addresses)
def test_address_bytes_round_trip_for_checksummed_addresses(address: str) -> None:
    assert "0x" + address_to_bytes(address).hex() == address.lower()
    assert to_checksum_address(address.lower()) == address
    assert destination_to_address(address_to_destination(address)) == address
