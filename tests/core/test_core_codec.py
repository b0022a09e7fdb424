"""The protobuf codec: exact wire shapes, and decoders that name every bad field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from node.core import (
    Allocation,
    FixedPart,
    Guarantee,
    InvalidSignatureError,
    InvalidValueError,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    Voucher,
    address_to_destination,
    guarantee_from_proto,
    guarantee_to_proto,
    signed_state_from_proto,
    signed_state_to_proto,
    state_from_proto,
    state_to_proto,
    uint256_from_bytes,
    uint256_to_bytes,
    voucher_from_proto,
    voucher_to_proto,
)
from node.proto import nitro_pb2

ALICE = Signer(bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d"))
BOB = Signer(bytes.fromhex("0279651921cd800ac560c21ceea27aab0107b67daf436cdd25ce84cad30159b4"))
APP = "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d"
NATIVE = "0x0000000000000000000000000000000000000000"
CHANNEL = bytes.fromhex("3f9dfeabcc41d1618dd0711102018ab6c1a1d7c25111a425401c2e524eb073a2")


def sample_state() -> State:
    fixed = FixedPart([ALICE.address, BOB.address], 9, APP, 60)
    guarantee = Guarantee(CHANNEL, 7, address_to_destination(ALICE.address), CHANNEL)
    outcome = [
        SingleAssetExit(
            NATIVE,
            [Allocation(address_to_destination(ALICE.address), 10), guarantee.to_allocation()],
        )
    ]
    return State(fixed, b"\x01\x02", outcome, 3, True)


def state_message() -> nitro_pb2.State:
    return state_to_proto(sample_state())


def raises_on(field: str, kind: type[InvalidValueError] = InvalidValueError) -> Any:
    return pytest.raises(kind, match=f"^{re.escape(field)}: ")


def test_uint256_is_32_bytes_big_endian() -> None:
    assert uint256_to_bytes(1) == bytes(31) + b"\x01"
    assert uint256_to_bytes(2**256 - 1) == b"\xff" * 32
    assert uint256_from_bytes(bytes(31) + b"\x01") == 1
    assert uint256_from_bytes(b"\xff" * 32) == 2**256 - 1


@pytest.mark.parametrize("value", [-1, 2**256, True, "1"])
def test_uint256_to_bytes_refuses_non_uint256(value: Any) -> None:
    with raises_on("amount"):
        uint256_to_bytes(value, "amount")


@pytest.mark.parametrize("size", [0, 1, 31, 33])
def test_uint256_from_bytes_needs_exactly_32_bytes(size: int) -> None:
    with raises_on("amount"):
        uint256_from_bytes(bytes(size), "amount")


def test_state_wire_shape() -> None:
    message = state_message()
    assert list(message.fixed.participants) == [
        bytes.fromhex(ALICE.address[2:]),
        bytes.fromhex(BOB.address[2:]),
    ]
    assert message.fixed.app_definition == bytes.fromhex(APP[2:])
    assert message.outcome[0].asset == bytes(20)
    assert message.outcome[0].allocations[0].amount == uint256_to_bytes(10)
    assert message.outcome[0].allocations[1].allocation_type == 2
    assert len(message.outcome[0].allocations[1].metadata) == 64


def test_state_round_trip_through_bytes() -> None:
    wire = state_message().SerializeToString()
    decoded = state_from_proto(nitro_pb2.State.FromString(wire))
    assert decoded == sample_state()


def test_signed_state_round_trip() -> None:
    signed = BOB.countersign(ALICE.countersign(SignedState(sample_state())))
    message = signed_state_to_proto(signed)
    assert [entry.participant_index for entry in message.signatures] == [0, 1]
    assert signed_state_from_proto(message) == signed


def test_voucher_and_guarantee_round_trip() -> None:
    voucher = ALICE.voucher(CHANNEL, 12345)
    assert voucher_from_proto(voucher_to_proto(voucher)) == voucher
    guarantee = Guarantee(CHANNEL, 99, address_to_destination(BOB.address), CHANNEL)
    assert guarantee_from_proto(guarantee_to_proto(guarantee)) == guarantee


def test_missing_fixed_part() -> None:
    message = state_message()
    message.ClearField("fixed")
    with raises_on("state.fixed"):
        state_from_proto(message)


def test_missing_state() -> None:
    with raises_on("signed_state.state"):
        signed_state_from_proto(nitro_pb2.SignedState())


@pytest.mark.parametrize("size", [0, 19, 21, 32])
def test_bad_participant_address(size: int) -> None:
    message = state_message()
    message.fixed.participants[1] = bytes(size)
    with raises_on("state.fixed.participants[1]"):
        state_from_proto(message)


def test_bad_app_definition() -> None:
    message = state_message()
    message.fixed.app_definition = b""
    with raises_on("state.fixed.app_definition"):
        state_from_proto(message)


def test_too_few_participants() -> None:
    message = state_message()
    del message.fixed.participants[1]
    with raises_on("state.fixed.participants"):
        state_from_proto(message)


def test_challenge_duration_beyond_uint48() -> None:
    message = state_message()
    message.fixed.challenge_duration = 2**48
    with raises_on("state.fixed.challenge_duration"):
        state_from_proto(message)


def test_turn_num_beyond_uint48() -> None:
    message = state_message()
    message.turn_num = 2**48
    with raises_on("state.turn_num"):
        state_from_proto(message)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_bad_amount_width(size: int) -> None:
    message = state_message()
    message.outcome[0].allocations[1].amount = bytes(size)
    with raises_on("state.outcome[0].allocations[1].amount"):
        state_from_proto(message)


def test_bad_destination_width() -> None:
    message = state_message()
    message.outcome[0].allocations[0].destination = bytes(20)
    with raises_on("state.outcome[0].allocations[0].destination"):
        state_from_proto(message)


@pytest.mark.parametrize("allocation_type", [1, 3, 255, 2**32 - 1])
def test_bad_allocation_type(allocation_type: int) -> None:
    message = state_message()
    message.outcome[0].allocations[0].allocation_type = allocation_type
    with raises_on("state.outcome[0].allocations[0].allocation_type"):
        state_from_proto(message)


def test_short_guarantee_metadata() -> None:
    message = state_message()
    message.outcome[0].allocations[1].metadata = bytes(63)
    with raises_on("state.outcome[0].allocations[1].metadata"):
        state_from_proto(message)


def test_bad_asset_and_asset_type() -> None:
    message = state_message()
    message.outcome[0].asset_type = 256
    with raises_on("state.outcome[0].asset_type"):
        state_from_proto(message)
    message = state_message()
    message.outcome[0].asset = bytes(32)
    with raises_on("state.outcome[0].asset"):
        state_from_proto(message)


def test_signed_state_bad_signatures() -> None:
    signed = signed_state_to_proto(ALICE.countersign(SignedState(sample_state())))
    signed.signatures[0].signature = signed.signatures[0].signature[:64] + b"\x00"
    with raises_on("signed_state.signatures[0]", InvalidSignatureError):
        signed_state_from_proto(signed)
    signed.signatures[0].participant_index = 2
    with raises_on("signed_state.signatures"):
        signed_state_from_proto(signed)


def test_signed_state_errors_inside_the_state_keep_their_path() -> None:
    signed = signed_state_to_proto(SignedState(sample_state()))
    signed.state.turn_num = 2**48
    with raises_on("signed_state.state.turn_num"):
        signed_state_from_proto(signed)


def test_voucher_decode_errors() -> None:
    good = voucher_to_proto(ALICE.voucher(CHANNEL, 5))
    message = nitro_pb2.Voucher()
    message.CopyFrom(good)
    message.signature = b"\x00" * 65
    with raises_on("voucher.signature", InvalidSignatureError):
        voucher_from_proto(message)
    message.CopyFrom(good)
    message.channel_id = address_to_destination(ALICE.address)
    with raises_on("voucher.channel_id"):
        voucher_from_proto(message)
    message.CopyFrom(good)
    message.amount = b"\x05"
    with raises_on("voucher.amount"):
        voucher_from_proto(message)
    message.CopyFrom(good)
    message.channel_id = CHANNEL[:16]
    with raises_on("voucher.channel_id"):
        voucher_from_proto(message)


def test_guarantee_decode_errors() -> None:
    good = guarantee_to_proto(Guarantee(CHANNEL, 1, CHANNEL, CHANNEL))
    message = nitro_pb2.Guarantee()
    message.CopyFrom(good)
    message.target = bytes(32)
    with raises_on("guarantee.target"):
        guarantee_from_proto(message)
    message.CopyFrom(good)
    message.right = bytes(31)
    with raises_on("guarantee.right"):
        guarantee_from_proto(message)
    message.CopyFrom(good)
    message.amount = bytes(33)
    with raises_on("guarantee.amount"):
        guarantee_from_proto(message)


def test_decoded_voucher_signature_is_checked_for_shape_only() -> None:
    # The codec checks shape; who signed is the caller's question.
    voucher = Voucher(CHANNEL, 5, BOB.sign_voucher(CHANNEL, 5))
    decoded = voucher_from_proto(voucher_to_proto(voucher))
    assert decoded.signature == voucher.signature
