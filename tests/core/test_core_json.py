"""Readable JSON of protobuf values: hex bytes, decimal amounts, enum names."""

from __future__ import annotations

import json
import re
from pathlib import Path

from node.core import message_to_json
from node.core._json import UINT256_FIELDS
from node.proto import derive_pb2, log_pb2

PROTO = Path(__file__).resolve().parents[2] / "proto" / "scnode" / "v1"
UINT256_COMMENT = re.compile(r"^\s*bytes (\w+) = \d+;\s*//\s*uint256", re.MULTILINE)


def test_bytes_are_hex_amounts_decimal_enums_named() -> None:
    record = log_pb2.LogRecord(seq=7, kind=log_pb2.RECORD_KIND_CHAIN_EVENT, prev_hash=b"\xab" * 2)
    record.chain_event.block_number = 2**40
    record.chain_event.deposited.channel_id = b"\x01\x02"
    record.chain_event.deposited.destination_holdings = (10**21).to_bytes(32, "big")
    document = message_to_json(record)
    assert document == {
        "seq": 7,
        "kind": "RECORD_KIND_CHAIN_EVENT",
        "prev_hash": "0xabab",
        "chain_event": {
            "block_number": 2**40,
            "deposited": {"channel_id": "0x0102", "destination_holdings": str(10**21)},
        },
    }
    assert json.loads(json.dumps(document)) == document


def test_repeated_fields_and_unknown_enum_values() -> None:
    view = derive_pb2.ChannelView(status=99)
    view.holdings.add(asset=b"\x00" * 20, amount=(5).to_bytes(32, "big"))
    view.holdings.add(asset=b"\xff" * 20, amount=(6).to_bytes(32, "big"))
    document = message_to_json(view)
    assert document["status"] == 99
    assert [h["amount"] for h in document["holdings"]] == ["5", "6"]
    assert document["holdings"][1]["asset"] == "0x" + "ff" * 20


def test_unset_fields_are_left_out() -> None:
    assert message_to_json(log_pb2.LogRecord()) == {}


def test_the_uint256_names_match_the_schema_comments() -> None:
    commented = {
        name for path in PROTO.glob("*.proto") for name in UINT256_COMMENT.findall(path.read_text())
    }
    assert commented  # the scan read something
    assert commented == UINT256_FIELDS
