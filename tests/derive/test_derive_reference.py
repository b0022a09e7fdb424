"""The reference WASM module agrees with the Python reference fold, record by record,
batched, and across snapshot/restore; bad records get error codes, never traps."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.derive import DeriveInstance, RecordRejectedError, ReferenceFold, frame_records
from node.proto import derive_pb2, log_pb2
from tests.derive.derive_strategies import (
    CHANNELS_WASM,
    accepted_state,
    all_queries,
    channel_spec,
    load_module,
    number_records,
    valid_logs,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def new_instance() -> DeriveInstance:
    return DeriveInstance(load_module(CHANNELS_WASM))


def assert_same_answers(instance: DeriveInstance, reference: ReferenceFold) -> None:
    for query in all_queries(reference):
        assert instance.query(query) == reference.query(query), query


def serialised(records: list[log_pb2.LogRecord]) -> list[bytes]:
    return [record.SerializeToString() for record in records]


@PROPERTY
@given(valid_logs())
def test_record_by_record_matches_reference(records: list[log_pb2.LogRecord]) -> None:
    instance, reference = new_instance(), ReferenceFold()
    for record in records:
        instance.apply_records([record.SerializeToString()])
        reference.apply(record)
        assert_same_answers(instance, reference)


@PROPERTY
@given(valid_logs(max_records=60), st.data())
def test_batches_and_snapshots_match_reference(
    records: list[log_pb2.LogRecord], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(records)), label="snapshot after")
    whole = new_instance()
    whole.apply_records(serialised(records))
    first = new_instance()
    first.apply_records(serialised(records[:cut]))
    blob = first.snapshot()
    resumed = new_instance()
    resumed.restore(blob)
    assert resumed.snapshot() == blob
    rest = records[cut:]
    while rest:
        size = data.draw(st.integers(1, len(rest)), label="batch size")
        resumed.apply_records(serialised(rest[:size]))
        rest = rest[size:]
    reference = ReferenceFold()
    for record in records:
        reference.apply(record)
    assert_same_answers(resumed, reference)
    assert resumed.snapshot() == whole.snapshot()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_logs())
def test_restoring_after_every_record_matches_reference(records: list[log_pb2.LogRecord]) -> None:
    """Snapshot, restore into a fresh instance and go on, at every record: the same
    answers as the reference and the same bytes as an instance never restored (the
    undo journal of reorganisations included)."""
    whole, resumed, reference = new_instance(), new_instance(), ReferenceFold()
    for record in records:
        blob = resumed.snapshot()
        resumed = new_instance()
        resumed.restore(blob)
        resumed.apply_records([record.SerializeToString()])
        whole.apply_records([record.SerializeToString()])
        reference.apply(record)
        assert_same_answers(resumed, reference)
        assert resumed.snapshot() == whole.snapshot()


@PROPERTY
@given(valid_logs())
def test_two_instances_derive_the_same_bytes(records: list[log_pb2.LogRecord]) -> None:
    left, right = new_instance(), new_instance()
    left.apply_records(serialised(records))
    for record in serialised(records):
        right.apply_records([record])
    assert left.snapshot() == right.snapshot()


def test_pending_states_beyond_the_bound_are_evicted_like_the_reference() -> None:
    spec = channel_spec(7, 3)
    records = [
        accepted_state(spec, turn=turn, is_final=False, amounts=[turn], signers={turn % 2})
        for turn in range(1, 45)
    ]
    records.append(accepted_state(spec, turn=3, is_final=False, amounts=[3], signers={0, 1, 2}))
    instance, reference = new_instance(), ReferenceFold()
    for record in number_records(records):
        instance.apply_records([record.SerializeToString()])
        reference.apply(record)
    assert_same_answers(instance, reference)
    assert len(reference.channels[spec.channel_id].states) <= 32


def test_states_signed_across_records_become_supported() -> None:
    spec = channel_spec(1, 2)
    records = number_records(
        [
            accepted_state(spec, turn=0, is_final=False, amounts=[1], signers={0}),
            accepted_state(spec, turn=0, is_final=False, amounts=[1], signers={1}),
        ]
    )
    instance = new_instance()
    instance.apply_records(serialised(records[:1]))
    view = instance.query(
        derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=spec.channel_id))
    ).channel
    assert not view.HasField("supported")
    assert view.status == derive_pb2.CHANNEL_STATUS_PROPOSED
    instance.apply_records(serialised(records[1:]))
    view = instance.query(
        derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=spec.channel_id))
    ).channel
    assert [s.participant_index for s in view.supported.signatures] == [0, 1]
    assert view.status == derive_pb2.CHANNEL_STATUS_FUNDING


def _good_prefix() -> list[log_pb2.LogRecord]:
    spec = channel_spec(2, 2)
    return number_records(
        [accepted_state(spec, turn=1, is_final=False, amounts=[4, 4], signers={0, 1})]
    )


def _bad_records() -> list[tuple[str, bytes, int]]:
    """(name, serialised record 2, expected error code)."""
    spec, other = channel_spec(2, 2), channel_spec(3, 2)
    cases: list[tuple[str, bytes, int]] = []
    gap = log_pb2.LogRecord(seq=3)
    gap.rejected.reason = "x"
    cases.append(("sequence gap", gap.SerializeToString(), 4))
    cases.append(("truncated protobuf", b"\x08\x02\x52\x05\x01", 2))
    short_id = number_records(
        [accepted_state(spec, turn=2, is_final=False, amounts=[1], signers={0})], 2
    )[0]
    short_id.accepted_state.channel_id = b"short"
    cases.append(("short channel id", short_id.SerializeToString(), 3))
    mismatch = number_records(
        [accepted_state(other, turn=2, is_final=False, amounts=[1], signers={0})], 2
    )[0]
    mismatch.accepted_state.channel_id = spec.channel_id
    cases.append(("fixed part mismatch", mismatch.SerializeToString(), 5))
    unsigned = number_records(
        [accepted_state(spec, turn=2, is_final=False, amounts=[1], signers={0})], 2
    )[0]
    del unsigned.accepted_state.signed_state.signatures[:]
    cases.append(("no signatures", unsigned.SerializeToString(), 3))
    outsider = number_records(
        [accepted_state(spec, turn=2, is_final=False, amounts=[1], signers={0})], 2
    )[0]
    outsider.accepted_state.signed_state.signatures[0].participant_index = 5
    cases.append(("signer not a participant", outsider.SerializeToString(), 3))
    amount = log_pb2.LogRecord(seq=2)
    amount.accepted_voucher.voucher.channel_id = spec.channel_id
    amount.accepted_voucher.voucher.amount = b"\x01" * 31
    cases.append(("31-byte amount", amount.SerializeToString(), 3))
    turn = number_records(
        [accepted_state(spec, turn=2**48, is_final=False, amounts=[1], signers={0})], 2
    )[0]
    cases.append(("turn beyond 2^48", turn.SerializeToString(), 3))
    return cases


@pytest.mark.parametrize(
    ("name", "bad", "code"), _bad_records(), ids=[c[0] for c in _bad_records()]
)
def test_bad_records_get_an_error_code_and_leave_the_state(
    name: str, bad: bytes, code: int
) -> None:
    good = _good_prefix()
    instance = new_instance()
    instance.apply_records(serialised(good))
    before = instance.snapshot()
    with pytest.raises(RecordRejectedError, match="record 2: ") as caught:
        instance.apply_records([bad])
    assert caught.value.code == code, caught.value.detail
    assert instance.snapshot() == before
    reference = ReferenceFold()
    reference.apply(good[0])
    with pytest.raises(RecordRejectedError) as expected:
        reference.apply_bytes(bad)
    assert expected.value.code == code
    follow = log_pb2.LogRecord(seq=2)
    follow.rejected.reason = "the module goes on after a refusal"
    instance.apply_records([follow.SerializeToString()])
    assert instance.query(derive_pb2.Query(get_cursor=derive_pb2.GetCursor())).cursor.last_seq == 2


def test_records_before_a_bad_one_in_a_batch_are_folded() -> None:
    good = _good_prefix()
    late = log_pb2.LogRecord(seq=9)
    instance = new_instance()
    with pytest.raises(RecordRejectedError, match="record 2: seq is 9, expected 2"):
        instance.apply_records([*serialised(good), late.SerializeToString()])
    cursor = instance.query(derive_pb2.Query(get_cursor=derive_pb2.GetCursor()))
    assert cursor.cursor.last_seq == 1


@pytest.mark.parametrize(
    ("batch", "message"),
    [(b"\x05\x00", "batch ends inside a length"), (b"\x09\x00\x00\x00\x08\x01", "overruns")],
)
def test_bad_framing_is_refused(batch: bytes, message: str) -> None:
    instance = new_instance()
    with pytest.raises(RecordRejectedError, match=message) as caught:
        instance.apply_batch(batch)
    assert caught.value.code == 1


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"SCDV",
        b"NOPE\x02\x00\x00\x00",
        b"SCDV\x01\x00\x00\x00" + bytes(36),  # an empty state in an old format
        b"SCDV\x02\x00\x00\x00" + bytes(36),  # the same in the previous format
        b"SCDV\x03\x00\x00\x00" + bytes(36),  # format 3 without its undo journal
        b"SCDV\x04\x00\x00\x00" + bytes(48),
    ],
)
def test_a_bad_snapshot_is_refused_and_the_state_kept(blob: bytes) -> None:
    instance = new_instance()
    instance.apply_records(serialised(_good_prefix()))
    before = instance.snapshot()
    with pytest.raises(RecordRejectedError, match="snapshot") as caught:
        instance.restore(blob)
    assert caught.value.code == 3
    assert instance.snapshot() == before


def test_a_truncated_real_snapshot_is_refused() -> None:
    instance = new_instance()
    instance.apply_records(serialised(_good_prefix()))
    blob = instance.snapshot()
    fresh = new_instance()
    for size in range(0, len(blob), 7):
        with pytest.raises(RecordRejectedError):
            fresh.restore(blob[:size])
    fresh.restore(blob)
    assert fresh.snapshot() == blob


def test_queries_the_module_does_not_know_are_bad_queries() -> None:
    instance = new_instance()
    for query in (
        derive_pb2.Query(),
        derive_pb2.Query(list_counterparties=derive_pb2.ListCounterparties()),
        derive_pb2.Query(list_channels=derive_pb2.ListChannels(after=b"x")),
    ):
        assert instance.query(query).status == derive_pb2.QUERY_STATUS_BAD_QUERY


def test_totals_saturate_instead_of_overflowing() -> None:
    records = []
    for number in range(2):
        record = log_pb2.LogRecord()
        record.chain_event.deposited.channel_id = hashlib.sha256(bytes([number])).digest()
        record.chain_event.deposited.asset = bytes(20)
        record.chain_event.deposited.destination_holdings = b"\xff" * 32
        records.append(record)
    instance, reference = new_instance(), ReferenceFold()
    instance.apply_batch(frame_records(serialised(number_records(records))))
    for record in number_records(records):
        reference.apply(record)
    totals = instance.query(derive_pb2.Query(get_totals=derive_pb2.GetTotals())).totals
    assert totals.holdings[0].amount == b"\xff" * 32
    assert_same_answers(instance, reference)


def test_only_type_2_allocations_are_guarantees() -> None:
    spec = channel_spec(5, 2)
    record = accepted_state(spec, turn=1, is_final=False, amounts=[1, 2, 3], signers={0, 1})
    allocations = record.accepted_state.signed_state.state.outcome[0].allocations
    allocations[0].allocation_type = 1  # withdrawHelper: not a guarantee, any metadata
    allocations[0].metadata = b"\x01"
    (numbered,) = number_records([record])
    instance, reference = new_instance(), ReferenceFold()
    instance.apply_records([numbered.SerializeToString()])
    reference.apply(numbered)
    assert_same_answers(instance, reference)
    view = instance.query(
        derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=spec.channel_id))
    ).channel
    assert [guarantee.amount for guarantee in view.guarantees] == [(3).to_bytes(32, "big")]
    assert view.guarantees[0].left == b"\x11" * 32
