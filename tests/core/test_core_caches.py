"""The caches of node.core: decoded values kept by their wire bytes, encodings kept on
the values, signers recovered once. Each must give exactly what computing afresh gives,
and never keep what failed validation."""

from __future__ import annotations

import pytest
from Crypto.Hash import keccak
from hypothesis import given
from hypothesis import strategies as st

from node.core import (
    Allocation,
    FixedPart,
    Guarantee,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    channel_id,
    keccak256,
    recover_state_signer,
    signed_state_from_proto,
    signed_state_to_proto,
    state_from_proto,
    state_hash,
    state_to_proto,
)
from node.core._codec import (
    fixed_part_from_proto,
    fixed_part_to_proto,
    single_asset_exit_to_proto,
)
from node.core._signing import _recover_digest_signer
from node.core.errors import InvalidValueError
from node.proto import nitro_pb2
from tests.core.core_strategies import fixed_parts, guarantees, states


@given(states)
def test_a_state_built_from_cached_exits_serializes_as_protobuf_does(state: State) -> None:
    reference = nitro_pb2.State(
        fixed=fixed_part_to_proto(state.fixed),
        app_data=state.app_data,
        outcome=[single_asset_exit_to_proto(e) for e in state.outcome],
        turn_num=state.turn_num,
        is_final=state.is_final,
    ).SerializeToString()
    for _ in range(2):  # the first time fills the caches, the second reads them
        assert state_to_proto(state).SerializeToString() == reference


@given(states)
def test_states_round_trip_and_a_state_decoded_again_is_the_same_value(state: State) -> None:
    wire = state_to_proto(state).SerializeToString()
    first = state_from_proto(nitro_pb2.State.FromString(wire))
    again = state_from_proto(nitro_pb2.State.FromString(wire))
    assert first == state
    assert again is first
    assert state_to_proto(first).SerializeToString() == wire
    assert state_hash(first) == state_hash(state)


@given(states)
def test_cached_abi_encodings_hash_as_fresh_values_do(state: State) -> None:
    expected = state_hash(state)
    rebuilt = State(
        state.fixed,
        state.app_data,
        [
            SingleAssetExit(
                e.asset,
                [
                    Allocation(a.destination, a.amount, a.allocation_type, a.metadata)
                    for a in e.allocations
                ],
                e.asset_type,
                e.asset_metadata,
            )
            for e in state.outcome
        ],
        state.turn_num,
        state.is_final,
    )
    assert state_hash(rebuilt) == expected
    # The same allocations in another state: their cached encodings serve it too.
    other = State(state.fixed, state.app_data, state.outcome, state.turn_num, not state.is_final)
    assert state_hash(other) != expected


@given(guarantees)
def test_a_guarantee_and_its_allocation_convert_both_ways(guarantee: Guarantee) -> None:
    allocation = guarantee.to_allocation()
    assert allocation is guarantee.to_allocation()
    assert Guarantee.from_allocation(allocation) == guarantee
    copy = Allocation(
        allocation.destination, allocation.amount, allocation.allocation_type, allocation.metadata
    )
    assert Guarantee.from_allocation(copy) == guarantee


def test_an_allocation_that_failed_validation_fails_every_time() -> None:
    bad = nitro_pb2.Allocation(destination=bytes(31), amount=bytes(32))
    good = nitro_pb2.Allocation(destination=bytes(32), amount=bytes(32))
    message = nitro_pb2.State(
        fixed=nitro_pb2.FixedPart(participants=[bytes(20), b"\x01" * 20], app_definition=bytes(20)),
        outcome=[nitro_pb2.SingleAssetExit(asset=bytes(20), allocations=[good, bad])],
    )
    for _ in range(2):
        with pytest.raises(InvalidValueError) as raised:
            state_from_proto(message)
        assert raised.value.field == "state.outcome[0].allocations[1].destination"


@given(st.binary(max_size=300))
def test_keccak256_is_ethereums(data: bytes) -> None:
    assert keccak256(data) == keccak.new(digest_bits=256, data=data).digest()


def test_keccak256_of_nothing() -> None:
    expected = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"").hex() == expected


@given(st.lists(states, min_size=1, max_size=8))
def test_states_kept_stay_within_their_byte_budget(kept: list[State]) -> None:
    from node.core import _codec

    saved = _codec._states
    _codec._states = _codec._ByWire(2_000)
    try:
        for state in kept:
            decoded = state_from_proto(state_to_proto(state))
            assert decoded == state
            values = _codec._states.values
            assert _codec._states.bytes == sum(len(wire) for wire in values)
            assert _codec._states.bytes <= max(2_000, len(next(reversed(values))))
    finally:
        _codec._states = saved


@given(fixed_parts)
def test_a_fixed_part_decoded_again_is_the_same_value(fixed: FixedPart) -> None:
    wire = fixed_part_to_proto(fixed).SerializeToString()
    first = fixed_part_from_proto(nitro_pb2.FixedPart.FromString(wire))
    assert first == fixed
    assert fixed_part_from_proto(nitro_pb2.FixedPart.FromString(wire)) is first
    assert channel_id(first) == channel_id(fixed)


def test_a_fixed_part_that_failed_validation_fails_every_time() -> None:
    message = nitro_pb2.FixedPart(participants=[bytes(20)], app_definition=bytes(20))
    for _ in range(2):
        with pytest.raises(InvalidValueError, match="participants"):
            fixed_part_from_proto(message)


@given(states, states)
def test_state_signers_kept_are_the_ones_recovery_gives(state: State, other: State) -> None:
    signer = Signer(bytes.fromhex("11" * 32))
    signature = signer.sign_state(state)  # kept as made
    assert recover_state_signer(state, signature) == signer.address
    fresh = _recover_digest_signer(state_hash(state), signature, "signature")
    assert fresh == signer.address
    if state_hash(other) != state_hash(state):  # the same signature on another state
        assert recover_state_signer(other, signature) == _recover_digest_signer(
            state_hash(other), signature, "signature"
        )
        assert recover_state_signer(other, signature) != signer.address


@given(states)
def test_a_signed_state_decoded_again_is_the_same_value(state: State) -> None:
    signer = Signer(bytes.fromhex("22" * 32))
    signed = SignedState(state, [(0, signer.sign_state(state))])
    wire = signed_state_to_proto(signed).SerializeToString()
    first = signed_state_from_proto(nitro_pb2.SignedState.FromString(wire))
    assert first == signed
    assert signed_state_from_proto(nitro_pb2.SignedState.FromString(wire)) is first
