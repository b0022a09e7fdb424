"""Golden vectors of PROTOCOL.md §2, reproduced byte for byte."""

from __future__ import annotations

import pytest

from node.core import (
    Allocation,
    FixedPart,
    GuaranteeMetadata,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    decode_guarantee_metadata,
    encode_exit,
    encode_guarantee_metadata,
    recover_state_signer,
    sign_state,
    state_hash,
)

NATIVE = "0x0000000000000000000000000000000000000000"
FIRST = "0xF5A1BB5607C9D079E46d1B3Dc33f257d937b43BD"
FIRST_KEY = bytes.fromhex("caab404f975b4620747174a75f08d98b4e5a7053b691b41bcfc0d839d48b7634")
SECOND = "0x760bf27cd45036a6C486802D30B5D90CfFBE31FE"
SECOND_KEY = bytes.fromhex("62ecd49c4ccb41a70ad46532aed63cf815de15864bc415c87d507afd6a5e8da2")


def golden_state() -> State:
    fixed = FixedPart(
        [FIRST, SECOND], 37140676580, "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d", 60
    )
    outcome = [
        SingleAssetExit(
            NATIVE,
            [
                Allocation(
                    bytes.fromhex("00" * 12 + "F5A1BB5607C9D079E46d1B3Dc33f257d937b43BD"), 5
                ),
                Allocation(
                    bytes.fromhex("00" * 12 + "Ee18fF1575055691009aa246aE608132C57a422c"), 5
                ),
            ],
        )
    ]
    return State(fixed, b"", outcome, 5, False)


def test_state_channel_id() -> None:
    expected = "3f9dfeabcc41d1618dd0711102018ab6c1a1d7c25111a425401c2e524eb073a2"
    assert channel_id(golden_state().fixed).hex() == expected


def test_state_hash() -> None:
    expected = "8e20f2e5f2cd3b3d4805eb3b98d2cf2945631042f4cb69fc629425dd28efe184"
    assert state_hash(golden_state()).hex() == expected


def test_state_signature_r_s_v() -> None:
    signature = sign_state(golden_state(), FIRST_KEY)
    assert signature[:32].hex() == (
        "2873c05a6ecebca3d2fde93ea3332b4423bbd2a60a973ec61b8abfe16294f69e"
    )
    assert signature[32:64].hex() == (
        "59ddb5b57c79924b57db6d928a0f3ef657c6e0e9879d2bf387364ace6d3284fd"
    )
    assert signature[64] == 27
    assert Signer(FIRST_KEY).sign_state(golden_state()) == signature


def test_state_signature_recovers_the_first_participant() -> None:
    signature = bytes.fromhex(
        "2873c05a6ecebca3d2fde93ea3332b4423bbd2a60a973ec61b8abfe16294f69e"
        "59ddb5b57c79924b57db6d928a0f3ef657c6e0e9879d2bf387364ace6d3284fd1b"
    )
    assert recover_state_signer(golden_state(), signature) == FIRST


def test_participant_keys_give_their_addresses() -> None:
    assert Signer(FIRST_KEY).address == FIRST
    assert Signer(SECOND_KEY).address == SECOND


EXIT_WORDS = """
0000000000000000000000000000000000000000000000000000000000000020
0000000000000000000000000000000000000000000000000000000000000001
0000000000000000000000000000000000000000000000000000000000000020
0000000000000000000000000000000000000000000000000000000000000000
0000000000000000000000000000000000000000000000000000000000000060
00000000000000000000000000000000000000000000000000000000000000c0
0000000000000000000000000000000000000000000000000000000000000000
0000000000000000000000000000000000000000000000000000000000000040
0000000000000000000000000000000000000000000000000000000000000000
0000000000000000000000000000000000000000000000000000000000000001
0000000000000000000000000000000000000000000000000000000000000020
00000000000000000000000096f7123e3a80c9813ef50213aded0e4511cb820f
0000000000000000000000000000000000000000000000000000000000000001
0000000000000000000000000000000000000000000000000000000000000000
0000000000000000000000000000000000000000000000000000000000000080
0000000000000000000000000000000000000000000000000000000000000000
"""


def test_exit_encoding() -> None:
    destination = address_to_destination("0x96f7123E3A80C9813eF50213ADEd0e4511CB820f")
    outcome = [SingleAssetExit(NATIVE, [Allocation(destination, 1, 0, b"")], 0, b"")]
    assert encode_exit(outcome).hex() == "".join(EXIT_WORDS.split())


def test_guarantee_metadata_encoding() -> None:
    left = address_to_destination("0x000000000000000000000000000000000000000a")
    right = address_to_destination("0x000000000000000000000000000000000000000b")
    encoded = encode_guarantee_metadata(left, right)
    assert encoded.hex() == (
        "000000000000000000000000000000000000000000000000000000000000000a"
        "000000000000000000000000000000000000000000000000000000000000000b"
    )
    assert decode_guarantee_metadata(encoded) == GuaranteeMetadata(left=left, right=right)


@pytest.mark.parametrize(
    ("key", "address"),
    [
        (
            "2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d",
            "0xAAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE",
        ),
        (
            "0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4",
            "0xBBB676f9cFF8D242e9eaC39D063848807d3D1D94",
        ),
        (
            "febb3b74b0b52d0976f6571d555f4ac8b91c308dfa25c7b58d1e6a7c3f50c781",
            "0x111A00868581f73AB42FEEF67D235Ca09ca1E8db",
        ),
        (
            "1ea91a2724b40fb8fed6a3648d49e9431996c09744fb841b718377fb0700f3e7",
            "0xA8d2D06aCE9c7FFc24Ee785C2695678aeCDfd7A0",
        ),
    ],
    ids=["alice", "bob", "irene", "ivan"],
)
def test_actor_keys_give_their_addresses(key: str, address: str) -> None:
    assert Signer(bytes.fromhex(key)).address == address
