"""Invariants of node.core values and signatures."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings

from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    channel_id,
    constants,
    is_external_destination,
    sign_state,
    sign_voucher,
    state_hash,
)
from tests.core.core_strategies import (
    channel_ids,
    fixed_parts,
    private_keys,
    states,
    uint256s,
)

HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
ALICE_KEY = bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d")
ALICE = "0xAAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE"
BOB = "0xBBB676f9cFF8D242e9eaC39D063848807d3D1D94"
APP = "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d"
NATIVE = "0x0000000000000000000000000000000000000000"


def assert_well_formed(signature: bytes) -> None:
    assert len(signature) == constants.signature_bytes
    assert signature[64] in (27, 28)
    assert 0 < int.from_bytes(signature[32:64], "big") <= HALF_N
    assert int.from_bytes(signature[:32], "big") > 0


@settings(max_examples=60, deadline=None)
@given(states, private_keys)
def test_state_signatures_are_65_bytes_low_s_v_27_or_28(state: State, key: bytes) -> None:
    assert_well_formed(sign_state(state, key))


@settings(max_examples=60, deadline=None)
@given(channel_ids, uint256s, private_keys)
def test_voucher_signatures_are_65_bytes_low_s_v_27_or_28(
    channel: bytes, amount: int, key: bytes
) -> None:
    assert_well_formed(sign_voucher(channel, amount, key))


def test_both_recovery_ids_occur() -> None:
    # Over a few turns both v values must appear: the +27 mapping covers both.
    fixed = FixedPart([ALICE, BOB], 1, APP, 60)
    seen = {sign_state(State(fixed, b"", [], turn, False), ALICE_KEY)[64] for turn in range(32)}
    assert seen == {27, 28}


@settings(deadline=None)
@given(fixed_parts)
def test_channel_id_is_never_external_shaped(fixed: FixedPart) -> None:
    identifier = channel_id(fixed)
    assert len(identifier) == 32
    assert not is_external_destination(identifier)


@settings(deadline=None)
@given(states)
def test_values_hash_and_compare_by_content(state: State) -> None:
    copy = dataclasses.replace(state)
    assert copy == state
    assert hash(copy) == hash(state)
    assert isinstance(state.outcome, tuple)
    assert isinstance(state.fixed.participants, tuple)
    for exit_ in state.outcome:
        assert isinstance(exit_.allocations, tuple)


@settings(deadline=None)
@given(states)
def test_the_hash_cache_does_not_change_identity(state: State) -> None:
    fresh = dataclasses.replace(state, fixed=dataclasses.replace(state.fixed))
    digest = state_hash(state)
    assert fresh == state
    assert hash(fresh) == hash(state)
    assert state_hash(fresh) == digest
    assert channel_id(fresh.fixed) == channel_id(state.fixed)


def test_replace_recomputes_the_cached_hashes() -> None:
    state = State(FixedPart([ALICE, BOB], 1, APP, 60), b"", [], 0, False)
    before = state_hash(state)
    assert state_hash(dataclasses.replace(state, turn_num=1)) != before
    moved = dataclasses.replace(state, fixed=dataclasses.replace(state.fixed, channel_nonce=2))
    assert channel_id(moved.fixed) != channel_id(state.fixed)
    assert state_hash(moved) != before


def test_lists_are_stored_as_tuples_and_addresses_checksummed() -> None:
    allocation = Allocation(bytes(12) + bytes.fromhex(BOB[2:]), 1)
    fixed = FixedPart([ALICE.lower(), BOB.upper().replace("0X", "0x")], 1, APP.lower(), 60)
    exit_ = SingleAssetExit(NATIVE, [allocation])
    state = State(fixed, bytearray(b"\x01"), [exit_], 0, False)  # type: ignore[arg-type]
    assert fixed.participants == (ALICE, BOB)
    assert fixed.app_definition == APP
    assert exit_.allocations == (allocation,)
    assert state.outcome == (exit_,)
    assert type(state.app_data) is bytes
    assert len({state, State(fixed, b"\x01", (exit_,), 0, False)}) == 1


def test_values_are_frozen() -> None:
    fixed = FixedPart([ALICE, BOB], 1, APP, 60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fixed.channel_nonce = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Signer(ALICE_KEY).address = BOB  # type: ignore[misc]


def test_signer_never_shows_its_key() -> None:
    signer = Signer(ALICE_KEY)
    assert ALICE_KEY.hex() not in repr(signer)
    assert ALICE_KEY.hex() not in str(signer)
    assert signer.address == ALICE
    assert signer == Signer(bytearray(ALICE_KEY))  # type: ignore[arg-type]


def test_signed_state_orders_signatures_by_index() -> None:
    fixed = FixedPart([ALICE, BOB], 1, APP, 60)
    state = State(fixed, b"", [], 0, False)
    first = sign_state(state, ALICE_KEY)
    second = Signer(
        bytes.fromhex("0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4")
    ).sign_state(state)
    by_mapping = SignedState(state, {1: second, 0: first})
    by_pairs = SignedState(state, [(1, second), (0, first)])
    assert by_mapping == by_pairs
    assert by_mapping.signatures == ((0, first), (1, second))
    assert by_mapping.signature_of(1) == second
    assert SignedState(state).signature_of(0) is None
    assert SignedState(state).with_signature(1, second).with_signature(0, first) == by_mapping
