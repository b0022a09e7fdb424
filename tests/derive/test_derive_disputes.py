"""What the reference module derives for disputes: the registered challenge's candidate,
whether the channel concluded, and how many reclaims drew on it; the WASM module and the
Python reference agree on each, across snapshots too."""

from __future__ import annotations

import pytest

from node.derive import DeriveInstance, RecordRejectedError, ReferenceFold
from node.proto import derive_pb2, log_pb2, nitro_pb2
from tests.derive.derive_strategies import (
    CHANNELS_WASM,
    ChannelSpec,
    accepted_state,
    all_queries,
    channel_spec,
    load_module,
    number_records,
)
from tests.derive.make_golden import disputes

SPEC = channel_spec(20, 2)


def candidate(turn: int, signers: set[int], spec: ChannelSpec = SPEC) -> nitro_pb2.SignedState:
    record = accepted_state(spec, turn=turn, is_final=False, amounts=[5, 5], signers=signers)
    return record.accepted_state.signed_state


def event(time_s: int) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord()
    record.chain_event.block_number = time_s
    record.chain_event.block_time_s = time_s
    return record


def challenge(
    finalizes_at: int, signed: nitro_pb2.SignedState | None, time_s: int = 1000
) -> log_pb2.LogRecord:
    record = event(time_s)
    registered = record.chain_event.challenge_registered
    registered.channel_id = SPEC.channel_id
    registered.finalizes_at = finalizes_at
    if signed is not None:
        registered.candidate.CopyFrom(signed)
    return record


def cleared(time_s: int = 1000) -> log_pb2.LogRecord:
    record = event(time_s)
    record.chain_event.challenge_cleared.channel_id = SPEC.channel_id
    return record


def concluded(time_s: int = 1000) -> log_pb2.LogRecord:
    record = event(time_s)
    record.chain_event.concluded.channel_id = SPEC.channel_id
    record.chain_event.concluded.finalizes_at = time_s
    return record


def reclaimed(channel_id: bytes, time_s: int = 1000) -> log_pb2.LogRecord:
    record = event(time_s)
    record.chain_event.reclaimed.channel_id = channel_id
    return record


def block(time_s: int) -> log_pb2.LogRecord:
    record = event(time_s)
    record.chain_event.block_processed.block_number = time_s
    return record


def opened() -> log_pb2.LogRecord:
    return accepted_state(SPEC, turn=1, is_final=False, amounts=[5, 5], signers={0, 1})


def fold_both(records: list[log_pb2.LogRecord]) -> tuple[DeriveInstance, ReferenceFold]:
    """Fold ``records`` (numbered from 1) into both, checking they agree after each."""
    instance, reference = DeriveInstance(load_module(CHANNELS_WASM)), ReferenceFold()
    for record in number_records(records):
        instance.apply_records([record.SerializeToString()])
        reference.apply(record)
        for query in all_queries(reference):
            assert instance.query(query) == reference.query(query), query
    return instance, reference


def view_of(
    instance: DeriveInstance, channel_id: bytes = SPEC.channel_id
) -> derive_pb2.ChannelView:
    query = derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=channel_id))
    return instance.query(query).channel


def raw_view(instance: DeriveInstance, channel_id: bytes = SPEC.channel_id) -> bytes:
    """The module's get_channel answer as it wrote it, unparsed."""
    query = derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=channel_id))
    data = query.SerializeToString()
    assert instance._call("query", instance._write_input(data), len(data)) == 0
    return instance._read_output()


def test_a_registered_challenge_carries_its_candidate() -> None:
    signed = candidate(3, {0, 1})
    instance, _ = fold_both([opened(), challenge(1060, signed)])
    view = view_of(instance)
    assert view.challenge == signed
    assert view.status == derive_pb2.CHANNEL_STATUS_CHALLENGED
    assert view.finalizes_at == 1060
    assert not view.concluded


def test_a_channel_never_challenged_has_no_challenge() -> None:
    instance, _ = fold_both([opened()])
    view = view_of(instance)
    assert not view.HasField("challenge")
    assert not view.concluded
    assert view.reclaims == 0


def test_a_later_challenge_replaces_the_candidate() -> None:
    first, second = candidate(2, {0, 1}), candidate(3, {1})
    instance, _ = fold_both([opened(), challenge(1060, first), challenge(1070, second)])
    assert view_of(instance).challenge == second
    instance, _ = fold_both([opened(), challenge(1060, first), challenge(1070, None)])
    view = view_of(instance)
    assert not view.HasField("challenge")
    assert view.status == derive_pb2.CHANNEL_STATUS_CHALLENGED


def test_a_cleared_challenge_leaves_no_candidate() -> None:
    records = [opened(), challenge(1060, candidate(2, {0, 1})), cleared()]
    instance, _ = fold_both(records)
    view = view_of(instance)
    assert not view.HasField("challenge")
    assert view.status == derive_pb2.CHANNEL_STATUS_OPEN
    again = candidate(4, {0})
    instance, _ = fold_both([*records, challenge(1090, again)])
    assert view_of(instance).challenge == again


def test_the_candidate_is_kept_when_the_channel_finalizes() -> None:
    signed = candidate(3, {0, 1})
    instance, _ = fold_both([opened(), challenge(1060, signed), block(1060)])
    view = view_of(instance)
    assert view.status == derive_pb2.CHANNEL_STATUS_FINALIZED
    assert view.challenge == signed
    assert not view.concluded
    instance, _ = fold_both([opened(), challenge(1060, signed), block(1061), concluded(1062)])
    view = view_of(instance)
    assert view.challenge == signed
    assert view.concluded


def test_concluded_is_set_by_a_concluded_event() -> None:
    instance, _ = fold_both([opened(), concluded(1000)])
    view = view_of(instance)
    assert view.concluded
    assert view.status == derive_pb2.CHANNEL_STATUS_FINALIZED
    assert not view.HasField("challenge")


def test_reclaims_count_reclaimed_events_out_of_the_source_channel() -> None:
    other = channel_spec(21, 2)
    records = [opened(), reclaimed(SPEC.channel_id), reclaimed(other.channel_id)]
    records.append(reclaimed(SPEC.channel_id))
    instance, _ = fold_both(records)
    assert view_of(instance).reclaims == 2
    assert view_of(instance, other.channel_id).reclaims == 1  # known from the event alone
    assert view_of(instance, other.channel_id).status == derive_pb2.CHANNEL_STATUS_PROPOSED


def test_a_candidate_is_kept_as_the_chain_gave_it() -> None:
    """The module never reads a candidate: a signature twice (the adjudicator accepts
    that), none, one by no participant, and unknown fields all come back as logged."""
    twice = candidate(3, {0, 1})
    twice.signatures.append(twice.signatures[0])
    unsigned = candidate(3, set())
    outsider = candidate(3, {0})
    outsider.signatures[0].participant_index = 9
    unknown_field = b"\xf8\x01\x07"  # field 31, varint 7: no such field in SignedState
    raw = candidate(3, {1}).SerializeToString() + unknown_field
    odd = nitro_pb2.SignedState.FromString(raw)
    for signed in (twice, unsigned, outsider, odd, nitro_pb2.SignedState()):
        instance, _ = fold_both([opened(), challenge(1060, signed)])
        view = view_of(instance)
        assert view.HasField("challenge")
        assert view.challenge == signed
    instance, _ = fold_both([challenge(1060, odd)])
    assert _length_field(14, raw) in raw_view(instance)


def _with_candidate_bytes(candidate_bytes: bytes) -> bytes:
    """Record 2: a ChallengeRegistered whose candidate field holds ``candidate_bytes``."""
    registered = log_pb2.ChallengeRegistered(channel_id=SPEC.channel_id, finalizes_at=1060)
    registered_bytes = registered.SerializeToString() + _length_field(3, candidate_bytes)
    chain_event = _length_field(13, registered_bytes)
    return log_pb2.LogRecord(seq=2).SerializeToString() + _length_field(11, chain_event)


def _length_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_STATE = candidate(3, {0}).state.SerializeToString()


@pytest.mark.parametrize(
    "candidate_bytes",
    [
        b"\x0a\x05\x01",  # state: 5 bytes promised, 1 there
        b"\x12\x02\x08",  # a signature cut inside its length
        _length_field(1, _STATE + b"\x22\x01"),  # state: turn_num as a cut length field
        _length_field(1, b"\x0a\x02\x0a\x09"),  # state.fixed: a participant cut short
        _length_field(1, _length_field(3, _length_field(4, b"\x12\x21"))),  # an allocation
        b"\x0f",  # wire type 7 does not exist
    ],
    ids=["state", "signature", "state field", "fixed", "allocation", "wire type"],
)
def test_a_malformed_candidate_is_refused_by_both(candidate_bytes: bytes) -> None:
    bad = _with_candidate_bytes(candidate_bytes)
    instance, reference = fold_both([opened()])
    before = instance.snapshot()
    with pytest.raises(RecordRejectedError, match=r"record 2: .*malformed protobuf") as caught:
        instance.apply_records([bad])
    assert caught.value.code == 2
    assert instance.snapshot() == before
    with pytest.raises(RecordRejectedError) as expected:
        reference.apply_bytes(bad)
    assert expected.value.code == 2


@pytest.mark.parametrize(
    "candidate_bytes",
    [
        b"\x08\x01",  # field 1 (state) as a varint: an unknown field to a decoder
        _length_field(1, b"\x18\x05" + _STATE),  # state.outcome as a varint
        b"",  # present but empty
    ],
    ids=["state as varint", "outcome as varint", "empty"],
)
def test_a_well_formed_odd_candidate_is_kept_by_both(candidate_bytes: bytes) -> None:
    good = _with_candidate_bytes(candidate_bytes)
    instance, reference = fold_both([opened()])
    instance.apply_records([good])
    reference.apply_bytes(good)
    for query in all_queries(reference):
        assert instance.query(query) == reference.query(query), query
    view = view_of(instance)
    assert view.HasField("challenge")
    assert view.challenge == nitro_pb2.SignedState.FromString(candidate_bytes)
    assert _length_field(14, candidate_bytes) in raw_view(instance)


def test_a_candidate_field_of_another_wire_type_is_no_candidate() -> None:
    registered = log_pb2.ChallengeRegistered(channel_id=SPEC.channel_id, finalizes_at=1060)
    chain_event = _length_field(13, registered.SerializeToString() + b"\x18\x01")
    odd = log_pb2.LogRecord(seq=2).SerializeToString() + _length_field(11, chain_event)
    instance, reference = fold_both([opened()])
    instance.apply_records([odd])
    reference.apply_bytes(odd)
    for query in all_queries(reference):
        assert instance.query(query) == reference.query(query), query
    assert not view_of(instance).HasField("challenge")
    assert view_of(instance).status == derive_pb2.CHANNEL_STATUS_CHALLENGED


def test_snapshot_restore_and_continue_equals_never_snapshotting() -> None:
    records = number_records(disputes())
    raw = [record.SerializeToString() for record in records]
    whole, reference = fold_both(disputes())
    for cut in range(len(raw) + 1):
        first = DeriveInstance(load_module(CHANNELS_WASM))
        first.apply_records(raw[:cut])
        resumed = DeriveInstance(load_module(CHANNELS_WASM))
        resumed.restore(first.snapshot())
        assert resumed.snapshot() == first.snapshot()
        if raw[cut:]:
            resumed.apply_records(raw[cut:])
        assert resumed.snapshot() == whole.snapshot()
        for query in all_queries(reference):
            assert resumed.query(query) == reference.query(query), (cut, query)
    views = [view_of(whole, channel_id) for channel_id in sorted(reference.channels)]
    assert sum(view.HasField("challenge") for view in views) == 2
    assert sum(view.reclaims for view in views) == 2


def _challenged_snapshot() -> tuple[bytes, bytes]:
    """A snapshot holding one challenged channel, and its candidate's bytes."""
    signed = candidate(3, {0, 1})
    instance, _ = fold_both([challenge(1060, signed)])
    return instance.snapshot(), signed.SerializeToString()


def test_a_snapshot_with_a_malformed_candidate_is_refused() -> None:
    blob, candidate_bytes = _challenged_snapshot()
    at = blob.index(candidate_bytes)
    damaged = blob[:at] + b"\x0f" + blob[at + 1 :]  # wire type 7 does not exist
    instance = DeriveInstance(load_module(CHANNELS_WASM))
    with pytest.raises(RecordRejectedError, match="candidate: malformed protobuf") as caught:
        instance.restore(damaged)
    assert caught.value.code == 2
    instance.restore(blob)
    assert instance.snapshot() == blob


def test_a_snapshot_with_a_candidate_but_no_challenge_is_refused() -> None:
    blob, candidate_bytes = _challenged_snapshot()
    # ... challenged, concluded, has a challenge, u32 length, candidate.
    flag = blob.index(candidate_bytes) - 4 - 3
    assert blob[flag : flag + 3] == b"\x01\x00\x01"
    damaged = blob[:flag] + b"\x00" + blob[flag + 1 :]
    with pytest.raises(RecordRejectedError, match="a challenge, not challenged") as caught:
        DeriveInstance(load_module(CHANNELS_WASM)).restore(damaged)
    assert caught.value.code == 3


def test_a_snapshot_of_the_previous_format_is_refused() -> None:
    blob, _ = _challenged_snapshot()
    assert blob[4:8] == (3).to_bytes(4, "little")
    for version in (1, 2):
        previous = blob[:4] + version.to_bytes(4, "little") + blob[8:]
        with pytest.raises(RecordRejectedError, match=f"snapshot version {version}") as caught:
            DeriveInstance(load_module(CHANNELS_WASM)).restore(previous)
        assert caught.value.code == 3
