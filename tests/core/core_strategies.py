"""Hypothesis strategies for the values of node.core."""

from __future__ import annotations

from hypothesis import strategies as st

from node.core import (
    Allocation,
    FixedPart,
    Guarantee,
    SingleAssetExit,
    State,
    address_from_bytes,
    constants,
)

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda key: key.to_bytes(32, "big")
)
addresses = st.binary(min_size=20, max_size=20).map(address_from_bytes)
destinations = st.one_of(
    st.binary(min_size=20, max_size=20).map(lambda raw: bytes(12) + raw),
    st.binary(min_size=32, max_size=32),
)
channel_ids = st.binary(min_size=32, max_size=32).filter(lambda data: any(data[:12]))
uint256s = st.integers(min_value=0, max_value=constants.uint256_max)


@st.composite
def allocations(draw: st.DrawFn) -> Allocation:
    """A simple or guarantee allocation."""
    allocation_type = draw(st.sampled_from([0, 2]))
    metadata = draw(
        st.binary(min_size=64, max_size=64) if allocation_type == 2 else st.binary(max_size=70)
    )
    return Allocation(draw(destinations), draw(uint256s), allocation_type, metadata)


single_asset_exits = st.builds(
    SingleAssetExit,
    asset=addresses,
    allocations=st.lists(allocations(), max_size=4),
    asset_type=st.integers(min_value=0, max_value=255),
    asset_metadata=st.binary(max_size=40),
)

fixed_parts = st.builds(
    FixedPart,
    participants=st.lists(
        addresses, min_size=constants.participants_min, max_size=constants.participants_max
    ),
    channel_nonce=st.integers(min_value=0, max_value=constants.channel_nonce_max),
    app_definition=addresses,
    challenge_duration=st.integers(min_value=0, max_value=constants.challenge_duration_s_max),
)

states = st.builds(
    State,
    fixed=fixed_parts,
    app_data=st.binary(max_size=100),
    outcome=st.lists(single_asset_exits, max_size=3),
    turn_num=st.integers(min_value=0, max_value=constants.turn_num_max),
    is_final=st.booleans(),
)

guarantees = st.builds(
    Guarantee, target=channel_ids, amount=uint256s, left=destinations, right=destinations
)
