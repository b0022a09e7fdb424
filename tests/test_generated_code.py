"""Generated protobuf code matches proto/, and the schema keeps its promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from node.proto import log_pb2, wire_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_generated_modules_match_their_sources() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_record_kinds_mirror_payload_field_numbers() -> None:
    # The log fills `kind` from the payload case; the two must stay in step.
    payload = log_pb2.LogRecord.DESCRIPTOR.oneofs_by_name["payload"]
    kinds = log_pb2.RecordKind.DESCRIPTOR.values_by_number
    for field in payload.fields:
        assert field.number in kinds, field.name
        assert kinds[field.number].name == "RECORD_KIND_" + field.name.upper()
    assert len(kinds) == len(payload.fields) + 1  # plus UNSPECIFIED


def test_a_frame_carries_many_messages() -> None:
    frame = wire_pb2.Frame(version=1, acks=[7, 8])
    for message_id in (1, 2, 3):
        envelope = frame.messages.add(id=message_id, sender=b"\x01" * 20, recipient=b"\x02" * 20)
        envelope.payloads.add(objective_id="x").ack.message_ids.append(message_id)
    decoded = wire_pb2.Frame.FromString(frame.SerializeToString())
    assert [message.id for message in decoded.messages] == [1, 2, 3]
    assert list(decoded.acks) == [7, 8]
    assert decoded.messages[2].payloads[0].WhichOneof("body") == "ack"
