"""Every invalid value is refused with an InvalidValueError that names its field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from node.core import (
    Allocation,
    FixedPart,
    Guarantee,
    GuaranteeMetadata,
    InvalidSignatureError,
    InvalidValueError,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    Voucher,
    address_from_bytes,
    address_to_bytes,
    address_to_destination,
    channel_id,
    constants,
    decode_guarantee_metadata,
    destination_to_address,
    encode_guarantee_metadata,
    is_address,
    is_external_destination,
    recover_state_signer,
    recover_voucher_signer,
    sign_state,
    sign_voucher,
    to_checksum_address,
    verify_signed_state,
    voucher_hash,
)
from node.core._signing import signer_address
from node.core._validate import check_channel_id

ALICE = "0xAAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE"
BOB = "0xBBB676f9cFF8D242e9eaC39D063848807d3D1D94"
ALICE_KEY = bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d")
BOB_KEY = bytes.fromhex("0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4")
APP = "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d"
NATIVE = "0x0000000000000000000000000000000000000000"
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CHANNEL = bytes.fromhex("3f9dfeabcc41d1618dd0711102018ab6c1a1d7c25111a425401c2e524eb073a2")
EXTERNAL = address_to_destination(ALICE)


def fixed(**changes: Any) -> FixedPart:
    arguments: dict[str, Any] = {
        "participants": [ALICE, BOB],
        "channel_nonce": 7,
        "app_definition": APP,
        "challenge_duration": 60,
    }
    arguments.update(changes)
    return FixedPart(**arguments)


def state(**changes: Any) -> State:
    arguments: dict[str, Any] = {
        "fixed": fixed(),
        "app_data": b"",
        "outcome": [SingleAssetExit(NATIVE, [Allocation(EXTERNAL, 5)])],
        "turn_num": 1,
        "is_final": False,
    }
    arguments.update(changes)
    return State(**arguments)


def raises_on(field: str, kind: type[InvalidValueError] = InvalidValueError) -> Any:
    """pytest.raises for ``kind`` whose message starts with ``field:``."""
    return pytest.raises(kind, match=f"^{re.escape(field)}: ")


def with_signature_bytes(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v,))


# Ranges


@pytest.mark.parametrize("nonce", [-1, 2**64, 2**64 + 5])
def test_channel_nonce_out_of_range(nonce: int) -> None:
    with raises_on("channel_nonce") as caught:
        fixed(channel_nonce=nonce)
    assert caught.value.field == "channel_nonce"


def test_channel_nonce_bounds_accepted() -> None:
    assert fixed(channel_nonce=0).channel_nonce == 0
    assert fixed(channel_nonce=2**64 - 1).channel_nonce == 2**64 - 1


@pytest.mark.parametrize("duration", [-1, 2**48])
def test_challenge_duration_out_of_range(duration: int) -> None:
    with raises_on("challenge_duration"):
        fixed(challenge_duration=duration)


@pytest.mark.parametrize("turn", [-1, 2**48])
def test_turn_num_out_of_range(turn: int) -> None:
    with raises_on("turn_num"):
        state(turn_num=turn)


def test_turn_num_maximum_accepted() -> None:
    assert state(turn_num=2**48 - 1).turn_num == 2**48 - 1


@pytest.mark.parametrize("amount", [-1, 2**256])
def test_amount_out_of_range(amount: int) -> None:
    with raises_on("amount"):
        Allocation(EXTERNAL, amount)
    with raises_on("amount"):
        Voucher(CHANNEL, amount, sign_voucher(CHANNEL, 1, ALICE_KEY))
    with raises_on("amount"):
        Guarantee(CHANNEL, amount, EXTERNAL, EXTERNAL)
    with raises_on("amount"):
        voucher_hash(CHANNEL, amount)
    with raises_on("amount"):
        sign_voucher(CHANNEL, amount, ALICE_KEY)


def test_amount_maximum_accepted() -> None:
    assert Allocation(EXTERNAL, 2**256 - 1).amount == 2**256 - 1


@pytest.mark.parametrize("value", [True, 1.0, "5", None])
def test_integers_must_be_ints(value: object) -> None:
    with raises_on("channel_nonce"):
        fixed(channel_nonce=value)
    with raises_on("amount"):
        Allocation(EXTERNAL, value)  # type: ignore[arg-type]


def test_is_final_must_be_a_bool() -> None:
    with raises_on("is_final"):
        state(is_final=1)


def test_byte_fields_must_be_bytes() -> None:
    with raises_on("app_data"):
        state(app_data="00")
    with raises_on("metadata"):
        Allocation(EXTERNAL, 1, 0, "x")  # type: ignore[arg-type]
    with raises_on("asset_metadata"):
        SingleAssetExit(NATIVE, [], 0, [1])  # type: ignore[arg-type]


def test_asset_type_is_a_uint8() -> None:
    with raises_on("asset_type"):
        SingleAssetExit(NATIVE, [], 256)


def test_container_fields_must_hold_their_kind() -> None:
    with raises_on("outcome[0]"):
        state(outcome=[Allocation(EXTERNAL, 1)])
    with raises_on("allocations[1]"):
        SingleAssetExit(NATIVE, [Allocation(EXTERNAL, 1), 5])  # type: ignore[list-item]
    with raises_on("allocations"):
        SingleAssetExit(NATIVE, b"")  # type: ignore[arg-type]
    with raises_on("participants"):
        fixed(participants=ALICE)
    with raises_on("fixed"):
        state(fixed="channel")


@pytest.mark.parametrize("count", [0, 1, constants.participants_max + 1])
def test_participant_count_out_of_range(count: int) -> None:
    with raises_on("participants"):
        fixed(participants=[ALICE] * count)


# Addresses


@pytest.mark.parametrize(
    "bad",
    [
        "0xAAA6628Ec44A8a742987EF3A114dDFE2D4F7aDC",  # 39 digits
        "0xAAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE0",  # 41 digits
        "AAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE00",  # no 0x
        "0xAAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCG",  # not hex
        "0xaAA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE",  # bad checksum
        "0x AA6628Ec44A8a742987EF3A114dDFE2D4F7aDCE",  # a space
    ],
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with raises_on("participants[1]"):
        fixed(participants=[ALICE, bad])
    with raises_on("app_definition"):
        fixed(app_definition=bad)
    with raises_on("asset"):
        SingleAssetExit(bad, [])
    with raises_on("address"):
        to_checksum_address(bad)
    with raises_on("address"):
        address_to_destination(bad)
    assert not is_address(bad)


def test_address_of_wrong_type_is_refused() -> None:
    with raises_on("app_definition"):
        fixed(app_definition=12)
    with raises_on("address"):
        to_checksum_address(12)  # type: ignore[arg-type]
    with raises_on("address"):
        address_to_bytes(b"\x00" * 20)  # type: ignore[arg-type]
    assert not is_address(b"\x00" * 20)


@pytest.mark.parametrize("size", [0, 19, 21, 32])
def test_raw_address_of_wrong_length_is_refused(size: int) -> None:
    with raises_on("address"):
        address_from_bytes(bytes(size))
    with raises_on("address"):
        to_checksum_address(bytes(size))


def test_unchecksummed_cases_are_accepted_and_normalised() -> None:
    assert to_checksum_address(ALICE.lower()) == ALICE
    assert to_checksum_address("0x" + ALICE[2:].upper()) == ALICE
    assert to_checksum_address(bytes.fromhex(ALICE[2:])) == ALICE
    assert fixed(participants=[ALICE.lower(), BOB]).participants == (ALICE, BOB)
    assert is_address(ALICE)
    assert address_to_bytes(ALICE) == bytes.fromhex(ALICE[2:])


# Destinations and channel ids


@pytest.mark.parametrize("size", [0, 20, 31, 33])
def test_destinations_must_be_32_bytes(size: int) -> None:
    with raises_on("destination"):
        Allocation(bytes(size), 1)
    with raises_on("destination"):
        destination_to_address(bytes(size))
    with raises_on("destination"):
        is_external_destination(bytes(size))
    with raises_on("left"):
        GuaranteeMetadata(bytes(size), EXTERNAL)
    with raises_on("right"):
        encode_guarantee_metadata(EXTERNAL, bytes(size))
    with raises_on("left"):
        Guarantee(CHANNEL, 1, bytes(size), EXTERNAL)


def test_destination_to_address_refuses_a_channel_id() -> None:
    with raises_on("destination"):
        destination_to_address(CHANNEL)
    assert not is_external_destination(CHANNEL)
    assert is_external_destination(EXTERNAL)
    assert destination_to_address(EXTERNAL) == ALICE


def test_external_shaped_channel_ids_are_refused() -> None:
    signature = sign_voucher(CHANNEL, 1, ALICE_KEY)
    with raises_on("channel_id"):
        Voucher(EXTERNAL, 1, signature)
    with raises_on("channel_id"):
        voucher_hash(EXTERNAL, 1)
    with raises_on("channel_id"):
        recover_voucher_signer(EXTERNAL, 1, signature)
    with raises_on("target"):
        Guarantee(EXTERNAL, 1, EXTERNAL, EXTERNAL)
    with raises_on("channel_id"):
        voucher_hash(CHANNEL[:31], 1)


# Allocation types and guarantee metadata


@pytest.mark.parametrize("allocation_type", [-1, 1, 3, 255, 256])
def test_allocation_type_must_be_0_or_2(allocation_type: int) -> None:
    with raises_on("allocation_type"):
        Allocation(EXTERNAL, 1, allocation_type, bytes(64))


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_guarantee_metadata_must_be_64_bytes(size: int) -> None:
    with raises_on("metadata"):
        Allocation(CHANNEL, 1, 2, bytes(size))
    with raises_on("metadata"):
        decode_guarantee_metadata(bytes(size))


def test_guarantee_from_a_simple_allocation_is_refused() -> None:
    with raises_on("allocation_type"):
        Guarantee.from_allocation(Allocation(CHANNEL, 1))


# Signatures


def good_signature() -> bytes:
    return sign_state(state(), ALICE_KEY)


def malformed_signatures() -> list[tuple[str, bytes]]:
    good = good_signature()
    r = int.from_bytes(good[:32], "big")
    s = int.from_bytes(good[32:64], "big")
    return [
        ("empty", b""),
        ("64 bytes", good[:64]),
        ("66 bytes", good + b"\x00"),
        ("v 0", good[:64] + b"\x00"),
        ("v 1", good[:64] + b"\x01"),
        ("v 29", good[:64] + b"\x1d"),
        ("r zero", with_signature_bytes(0, s, 27)),
        ("r = n", with_signature_bytes(N, s, 27)),
        ("r max", with_signature_bytes(2**256 - 1, s, 27)),
        ("s zero", with_signature_bytes(r, 0, 27)),
        ("s = n", with_signature_bytes(r, N, 27)),
        ("high s", with_signature_bytes(r, N - s, 27)),
    ]


@pytest.mark.parametrize("index", range(12))
def test_malformed_signatures_are_refused(index: int) -> None:
    _name, signature = malformed_signatures()[index]
    with raises_on("signature", InvalidSignatureError):
        recover_state_signer(state(), signature)
    with raises_on("signature", InvalidSignatureError):
        recover_voucher_signer(CHANNEL, 1, signature)
    with raises_on("signature", InvalidSignatureError):
        Voucher(CHANNEL, 1, signature)
    with raises_on("signatures[1]", InvalidSignatureError):
        SignedState(state(), {1: signature})


def test_high_s_twin_of_a_valid_signature_is_refused() -> None:
    # (r, n - s, flipped v) is the same signature in its malleable form.
    good = good_signature()
    s = int.from_bytes(good[32:64], "big")
    twin = with_signature_bytes(int.from_bytes(good[:32], "big"), N - s, 55 - good[64])
    with raises_on("signature", InvalidSignatureError) as caught:
        recover_state_signer(state(), twin)
    assert "high-S" in str(caught.value)


def test_signature_of_wrong_type_is_refused() -> None:
    with raises_on("signature", InvalidSignatureError):
        recover_state_signer(state(), "0x00")  # type: ignore[arg-type]


def test_r_that_is_not_a_curve_point_recovers_nothing() -> None:
    # x = 5 has no point on secp256k1 (5^3 + 7 = 132 is not a square mod p).
    signature = with_signature_bytes(5, 1, 27)
    with raises_on("signature", InvalidSignatureError) as caught:
        recover_state_signer(state(), signature)
    assert "recovers no public key" in str(caught.value)


def test_recovery_to_the_zero_address_is_refused() -> None:
    with raises_on("signature", InvalidSignatureError):
        signer_address(bytes(20))
    with raises_on("signatures[0]", InvalidSignatureError):
        signer_address(bytes(20), "signatures[0]")
    assert signer_address(bytes.fromhex(ALICE[2:])) == ALICE


@pytest.mark.parametrize(
    "key",
    [b"", bytes(31), bytes(33), bytes(32), N.to_bytes(32, "big"), b"\xff" * 32, "00" * 32],
)
def test_bad_private_keys_are_refused(key: Any) -> None:
    with raises_on("private_key"):
        Signer(key)
    with raises_on("private_key"):
        sign_state(state(), key)
    with raises_on("private_key"):
        sign_voucher(CHANNEL, 1, key)


# Signed states


def test_signed_state_refuses_bad_indices() -> None:
    signature = good_signature()
    with raises_on("signatures"):
        SignedState(state(), {2: signature})
    with raises_on("signatures"):
        SignedState(state(), [(-1, signature)])
    with raises_on("signatures"):
        SignedState(state(), [(True, signature)])
    with raises_on("signatures[0]"):
        SignedState(state(), [(0, signature), (0, signature)])
    with raises_on("state"):
        SignedState("state", {})  # type: ignore[arg-type]


def test_verify_signed_state_names_the_wrong_signature() -> None:
    signed = SignedState(state(), {0: good_signature(), 1: good_signature()})
    with raises_on("signatures[1]", InvalidSignatureError) as caught:
        verify_signed_state(signed)
    assert ALICE in str(caught.value)
    assert BOB in str(caught.value)


def test_with_signature_refuses_a_second_different_signature() -> None:
    signed = SignedState(state(), {0: good_signature()})
    other = sign_state(state(turn_num=2), ALICE_KEY)
    with raises_on("signatures[0]"):
        signed.with_signature(0, other)
    assert signed.with_signature(0, good_signature()) is signed


def test_countersign_refuses_a_stranger() -> None:
    stranger = Signer(
        bytes.fromhex("1ea91a2724b40fb8fed6a3648d49e9431996c09744fb841b718377fb0700f3e7")
    )
    with raises_on("participants"):
        stranger.countersign(SignedState(state()))


def test_computed_channel_ids_go_through_the_external_shape_check() -> None:
    # No preimage of an external-shaped id is known, so the check channel_id()
    # applies to every digest is exercised directly.
    with raises_on("channel_id"):
        check_channel_id(bytes(12) + b"\x01" * 20, "channel_id")
    assert check_channel_id(channel_id(fixed()), "channel_id") == channel_id(fixed())
