"""ABI forms of Nitro values: agreement with node.core, and the protobuf way back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.chain import (
    encode_outcome,
    fixed_part_tuple,
    sign_state_tuples,
    signature_tuple,
    signed_variable_part,
    state_hash_of,
    variable_part_tuple,
)
from node.chain._abi import recover_signer, signed_state_proto
from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    SingleAssetExit,
    State,
    encode_exit,
    signed_state_from_proto,
    state_hash,
)
from node.core.errors import InvalidValueError
from tests.actors import ALICE, BOB

ASSET = "0x0000000000000000000000000000000000000000"


def make_state(nonce: int, amounts: list[int], turn: int, app_data: bytes, final: bool) -> State:
    fixed = FixedPart([ALICE.address, BOB.address], nonce, "0x" + "ab" * 20, 60)
    allocations = [Allocation(bytes(12) + bytes([i + 1]) * 20, a) for i, a in enumerate(amounts)]
    return State(fixed, app_data, [SingleAssetExit(ASSET, allocations)], turn, final)


states = st.builds(
    make_state,
    st.integers(0, 2**64 - 1),
    st.lists(st.integers(0, 2**256 - 1), max_size=4),
    st.integers(0, 2**48 - 1),
    st.binary(max_size=70),
    st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(states)
def test_abi_state_hash_matches_node_core(state: State) -> None:
    assert state_hash_of(fixed_part_tuple(state), variable_part_tuple(state)) == state_hash(state)
    assert encode_outcome(variable_part_tuple(state)[0]) == encode_exit(state.outcome)


def test_signature_tuple_is_v_r_s() -> None:
    signature = bytes(range(64)) + b"\x1c"
    assert signature_tuple(signature) == (28, bytes(range(32)), bytes(range(32, 64)))
    with pytest.raises(InvalidValueError, match="signature: expected 65 bytes, got 64"):
        signature_tuple(signature[:64])


def test_tuple_signing_agrees_with_node_core() -> None:
    state = make_state(5, [1, 2], 3, b"", False)
    fixed, variable = fixed_part_tuple(state), variable_part_tuple(state)
    assert sign_state_tuples(fixed, variable, ALICE.private_key) == ALICE.sign_state(state)


def test_signed_state_proto_round_trips_and_attributes_signers() -> None:
    state = make_state(7, [3, 4], 9, b"\x05", False)
    signed = SignedState(state, {1: BOB.sign_state(state), 0: ALICE.sign_state(state)})
    variable, sigs = signed_variable_part(signed)
    decoded_fixed = {
        "participants": list(state.fixed.participants),
        "channelNonce": state.fixed.channel_nonce,
        "appDefinition": state.fixed.app_definition,
        "challengeDuration": state.fixed.challenge_duration,
    }
    # Signatures out of participant order, plus one by a stranger: order is
    # restored by recovery and the stranger's is dropped.
    stranger = signature_tuple(b"\x01" * 64 + b"\x1b")
    message = signed_state_proto(decoded_fixed, (variable, [sigs[1], sigs[0], stranger]))
    assert signed_state_from_proto(message) == signed


def test_recover_signer_rejects_malformed_signatures() -> None:
    digest = b"\x11" * 32
    assert recover_signer(digest, b"\x00" * 65) is None
    assert recover_signer(digest, b"\x00" * 64 + b"\x1b") is None
    assert recover_signer(digest, b"\x01" * 10) is None
