"""BlocksReverted: chain events of orphaned blocks are undone by the module and the
reference alike, exactly as if never folded; accepted states and vouchers stay; a revert
deeper than the undo journal is refused with code 8; the journal survives snapshots."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.derive import DeriveInstance, RecordRejectedError, ReferenceFold
from node.derive._reference import CHAIN_UNDO_ENTRIES_MAX, CODE_REVERT_TOO_DEEP
from node.proto import derive_pb2, log_pb2, nitro_pb2
from tests.derive.derive_strategies import (
    ASSETS,
    CHANNELS_WASM,
    all_queries,
    blocks_reverted,
    channel_spec,
    load_module,
    number_records,
    u256,
    valid_logs,
)
from tests.derive.derive_strategies import (
    accepted_state as state_record,
)

SPEC, OTHER = channel_spec(30, 2), channel_spec(31, 2)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------ records


def chain(block: int, time_s: int | None = None) -> log_pb2.LogRecord:
    """A chain event of ``block`` (block time 1000 + block unless given)."""
    record = log_pb2.LogRecord()
    record.chain_event.block_number = block
    record.chain_event.block_time_s = 1000 + block if time_s is None else time_s
    return record


def deposit(block: int, amount: int, channel_id: bytes = SPEC.channel_id) -> log_pb2.LogRecord:
    record = chain(block)
    record.chain_event.deposited.channel_id = channel_id
    record.chain_event.deposited.asset = ASSETS[0]
    record.chain_event.deposited.destination_holdings = u256(amount)
    return record


def challenge(
    block: int, finalizes_at: int, candidate: nitro_pb2.SignedState | None
) -> log_pb2.LogRecord:
    record = chain(block)
    registered = record.chain_event.challenge_registered
    registered.channel_id = SPEC.channel_id
    registered.finalizes_at = finalizes_at
    if candidate is not None:
        registered.candidate.CopyFrom(candidate)
    return record


def cleared(block: int) -> log_pb2.LogRecord:
    record = chain(block)
    record.chain_event.challenge_cleared.channel_id = SPEC.channel_id
    return record


def concluded(block: int, finalizes_at: int) -> log_pb2.LogRecord:
    record = chain(block)
    record.chain_event.concluded.channel_id = SPEC.channel_id
    record.chain_event.concluded.finalizes_at = finalizes_at
    return record


def reclaimed(block: int, channel_id: bytes = SPEC.channel_id) -> log_pb2.LogRecord:
    record = chain(block)
    record.chain_event.reclaimed.channel_id = channel_id
    return record


def processed(block: int, time_s: int | None = None) -> log_pb2.LogRecord:
    record = chain(block, time_s)
    record.chain_event.block_processed.block_number = block
    return record


def voucher(amount: int, channel_id: bytes = SPEC.channel_id) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord()
    record.accepted_voucher.sent = True
    record.accepted_voucher.voucher.channel_id = channel_id
    record.accepted_voucher.voucher.amount = u256(amount)
    record.accepted_voucher.voucher.signature = b"\x33" * 65
    return record


def opened(turn: int = 1) -> log_pb2.LogRecord:
    return state_record(SPEC, turn=turn, is_final=False, amounts=[5, 5], signers={0, 1})


def candidate(turn: int) -> nitro_pb2.SignedState:
    return opened(turn).accepted_state.signed_state


# ------------------------------------------------------------------ folding


def new_instance() -> DeriveInstance:
    return DeriveInstance(load_module(CHANNELS_WASM))


def fold_both(records: list[log_pb2.LogRecord]) -> tuple[DeriveInstance, ReferenceFold]:
    """Fold ``records`` (numbered from 1) into both, checking they agree after each."""
    instance, reference = new_instance(), ReferenceFold()
    for record in number_records(records):
        instance.apply_records([record.SerializeToString()])
        reference.apply(record)
        for query in all_queries(reference):
            assert instance.query(query) == reference.query(query), (record.seq, query)
    return instance, reference


def view_of(
    instance: DeriveInstance, channel_id: bytes = SPEC.channel_id
) -> derive_pb2.ChannelView:
    query = derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=channel_id))
    result = instance.query(query)
    assert result.status == derive_pb2.QUERY_STATUS_OK, result.detail
    return result.channel


def known(instance: DeriveInstance, channel_id: bytes) -> bool:
    query = derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=channel_id))
    return instance.query(query).status == derive_pb2.QUERY_STATUS_OK


def views(instance: DeriveInstance) -> dict[bytes, derive_pb2.ChannelView]:
    """Every channel's view, with last_seq left out."""
    query = derive_pb2.Query(list_channels=derive_pb2.ListChannels(limit=1024))
    found = {}
    for view in instance.query(query).channels.channels:
        view.last_seq = 0
        found[view.channel_id] = view
    return found


def holdings(instance: DeriveInstance) -> list[derive_pb2.Holding]:
    totals = instance.query(derive_pb2.Query(get_totals=derive_pb2.GetTotals())).totals
    return list(totals.holdings)


def assert_as_if_never_folded(instance: DeriveInstance, without: list[log_pb2.LogRecord]) -> None:
    """``instance`` derives what a log of ``without`` (no orphans, no revert) derives,
    apart from last_seq, the record count and the cursor."""
    never, _ = fold_both(without)
    assert views(instance) == views(never)
    assert holdings(instance) == holdings(never)


# ------------------------------------------------------------------ each fact


def test_an_orphaned_deposit_is_undone_and_mined_again_at_another_block() -> None:
    records = [opened(), deposit(10, 5), blocks_reverted(10)]
    instance, _ = fold_both(records)
    view = view_of(instance)
    assert list(view.holdings) == []  # as before the deposit: no holding at all
    assert view.last_seq == 3  # the revert changed the view
    assert_as_if_never_folded(instance, [opened()])
    records.append(deposit(12, 5))
    instance, _ = fold_both(records)
    assert view_of(instance).holdings[0].amount == u256(5)
    assert view_of(instance).last_seq == 4
    assert_as_if_never_folded(instance, [opened(), deposit(12, 5)])


def test_an_orphaned_deposit_leaves_the_holding_of_the_block_before() -> None:
    records = [opened(), deposit(10, 5), deposit(11, 9), deposit(11, 12), blocks_reverted(11)]
    instance, _ = fold_both(records)
    assert view_of(instance).holdings[0].amount == u256(5)
    assert_as_if_never_folded(instance, records[:2])


def test_an_orphaned_challenge_is_undone() -> None:
    records = [opened(), challenge(20, 1100, candidate(1)), blocks_reverted(20)]
    instance, _ = fold_both(records)
    view = view_of(instance)
    assert view.status == derive_pb2.CHANNEL_STATUS_OPEN
    assert not view.HasField("challenge")
    assert view.finalizes_at == 0
    assert_as_if_never_folded(instance, [opened()])


def test_an_orphaned_challenge_gives_back_the_one_it_replaced() -> None:
    first, second = candidate(1), candidate(2)
    records = [opened(), challenge(20, 1100, first), challenge(21, 1200, second)]
    instance, _ = fold_both([*records, blocks_reverted(21)])
    view = view_of(instance)
    assert view.challenge == first
    assert view.finalizes_at == 1100
    assert view.status == derive_pb2.CHANNEL_STATUS_CHALLENGED
    assert_as_if_never_folded(instance, records[:2])


def test_an_orphaned_clearing_gives_the_challenge_back() -> None:
    first = candidate(1)
    records = [opened(), challenge(20, 1100, first), cleared(21), blocks_reverted(21)]
    instance, _ = fold_both(records)
    view = view_of(instance)
    assert view.challenge == first
    assert view.finalizes_at == 1100
    assert view.status == derive_pb2.CHANNEL_STATUS_CHALLENGED
    assert_as_if_never_folded(instance, records[:2])


def test_an_orphaned_reclaim_is_undone() -> None:
    records = [opened(), reclaimed(30), reclaimed(31), reclaimed(31)]
    instance, _ = fold_both([*records, blocks_reverted(31)])
    assert view_of(instance).reclaims == 1
    assert_as_if_never_folded(instance, records[:2])
    instance, _ = fold_both([*records, blocks_reverted(31), blocks_reverted(30)])
    assert view_of(instance).reclaims == 0
    assert_as_if_never_folded(instance, records[:1])


def test_an_orphaned_conclusion_is_undone() -> None:
    records = [opened(), challenge(40, 1100, candidate(1)), concluded(41, 1041)]
    instance, _ = fold_both(records)
    assert view_of(instance).status == derive_pb2.CHANNEL_STATUS_FINALIZED
    instance, _ = fold_both([*records, blocks_reverted(41)])
    view = view_of(instance)
    assert not view.concluded
    assert view.finalizes_at == 1100
    assert view.status == derive_pb2.CHANNEL_STATUS_CHALLENGED
    assert_as_if_never_folded(instance, records[:2])


def test_chain_time_goes_back_with_the_blocks() -> None:
    records = [opened(), challenge(20, 1050, candidate(1)), processed(25, time_s=1060)]
    instance, _ = fold_both(records)
    assert view_of(instance).status == derive_pb2.CHANNEL_STATUS_FINALIZED  # expired
    instance, _ = fold_both([*records, blocks_reverted(25)])
    assert view_of(instance).status == derive_pb2.CHANNEL_STATUS_CHALLENGED
    assert view_of(instance).last_seq == 2  # a block mark names no channel
    # The canonical block 25 is older: the challenge has not expired yet.
    instance, _ = fold_both([*records, blocks_reverted(25), processed(25, time_s=1049)])
    assert view_of(instance).status == derive_pb2.CHANNEL_STATUS_CHALLENGED
    instance, _ = fold_both([*records, blocks_reverted(25), processed(26, time_s=1050)])
    assert view_of(instance).status == derive_pb2.CHANNEL_STATUS_FINALIZED


def test_several_blocks_on_several_channels() -> None:
    other = state_record(OTHER, turn=1, is_final=False, amounts=[1], signers={0, 1})
    kept = [opened(), other, deposit(50, 5), deposit(51, 3, OTHER.channel_id), reclaimed(52)]
    orphaned = [
        deposit(53, 8),
        challenge(53, 1100, candidate(1)),
        deposit(54, 0, OTHER.channel_id),
        reclaimed(55, OTHER.channel_id),
        processed(55),
    ]
    instance, _ = fold_both([*kept, *orphaned, blocks_reverted(53)])
    assert_as_if_never_folded(instance, kept)
    revert_seq = len(kept) + len(orphaned) + 1
    assert view_of(instance).last_seq == revert_seq
    assert view_of(instance, OTHER.channel_id).last_seq == revert_seq
    # The canonical chain: other events in other blocks.
    canonical = [deposit(53, 6, OTHER.channel_id), concluded(56, 1056)]
    instance, _ = fold_both([*kept, *orphaned, blocks_reverted(53), *canonical])
    assert_as_if_never_folded(instance, [*kept, *canonical])


def test_a_revert_of_blocks_without_events_changes_nothing() -> None:
    records = [opened(), deposit(10, 5), challenge(11, 1100, candidate(1))]
    instance, _ = fold_both(records)
    before = views(instance)
    last_seq = view_of(instance).last_seq
    blob = instance.snapshot()
    instance, _ = fold_both([*records, blocks_reverted(12)])
    assert views(instance) == before
    assert view_of(instance).last_seq == last_seq
    # Only the header (cursor and record count) moved.
    assert instance.snapshot()[24:] == blob[24:]
    fold_both([blocks_reverted(0)])  # nothing folded yet: a revert of everything is no-op


def test_a_channel_known_only_from_reverted_events_disappears() -> None:
    records = [opened(), deposit(10, 7, OTHER.channel_id), reclaimed(11, OTHER.channel_id)]
    instance, _ = fold_both(records)
    assert known(instance, OTHER.channel_id)
    instance, _ = fold_both([*records, blocks_reverted(10)])
    assert not known(instance, OTHER.channel_id)
    assert_as_if_never_folded(instance, records[:1])
    totals = instance.query(derive_pb2.Query(get_totals=derive_pb2.GetTotals())).totals
    assert totals.channels == 1
    # Created by an event older than the revert: it stays, with that event's facts.
    instance, _ = fold_both([*records, blocks_reverted(11)])
    assert view_of(instance, OTHER.channel_id).holdings[0].amount == u256(7)
    assert view_of(instance, OTHER.channel_id).reclaims == 0


def test_a_channel_a_state_or_voucher_names_stays_with_no_chain_facts() -> None:
    other_state = state_record(OTHER, turn=0, is_final=False, amounts=[1], signers={0})
    for later in (other_state, voucher(4, OTHER.channel_id)):
        records = [deposit(10, 7, OTHER.channel_id), later, reclaimed(11, OTHER.channel_id)]
        instance, _ = fold_both([*records, blocks_reverted(10)])
        view = view_of(instance, OTHER.channel_id)
        assert list(view.holdings) == []
        assert view.reclaims == 0
        assert view.last_seq == 4
        assert_as_if_never_folded(instance, [later])


def test_accepted_states_and_vouchers_are_never_reverted() -> None:
    records = [
        opened(),
        deposit(10, 10),
        voucher(3),
        state_record(SPEC, turn=2, is_final=False, amounts=[4, 6], signers={0, 1}),
        challenge(11, 1100, candidate(2)),
        voucher(5),
        state_record(SPEC, turn=3, is_final=True, amounts=[3, 7], signers={0}),
    ]
    before, _ = fold_both(records)
    instance, _ = fold_both([*records, blocks_reverted(10)])
    after, earlier = view_of(instance), view_of(before)
    assert after.supported == earlier.supported
    assert list(after.latest_signed) == list(earlier.latest_signed)
    assert (after.voucher_amount, after.paid, after.vouchers) == (
        earlier.voucher_amount,
        earlier.paid,
        earlier.vouchers,
    )
    assert after.status == derive_pb2.CHANNEL_STATUS_CLOSING
    assert list(after.holdings) == []
    assert not after.HasField("challenge")


# ------------------------------------------------------------------ the bound


def refused_alike(records: list[log_pb2.LogRecord], bad: log_pb2.LogRecord) -> str:
    """Fold ``records`` into both, then check both refuse ``bad`` with code 8 and keep
    their state; returns the module's detail."""
    instance, reference = new_instance(), ReferenceFold()
    numbered = number_records([*records, bad])
    instance.apply_records([record.SerializeToString() for record in numbered[:-1]])
    for record in numbered[:-1]:
        reference.apply(record)
    blob = instance.snapshot()
    with pytest.raises(RecordRejectedError) as caught:
        instance.apply_records([numbered[-1].SerializeToString()])
    with pytest.raises(RecordRejectedError) as expected:
        reference.apply(numbered[-1])
    assert caught.value.code == expected.value.code == CODE_REVERT_TOO_DEEP == 8
    assert caught.value.detail == expected.value.detail
    assert instance.snapshot() == blob
    for query in all_queries(reference):
        assert instance.query(query) == reference.query(query), query
    return caught.value.detail


def test_a_revert_deeper_than_the_journal_is_refused() -> None:
    extra = 5
    records = [opened()]
    records += [deposit(block, block) for block in range(1, CHAIN_UNDO_ENTRIES_MAX + extra + 1)]
    detail = refused_alike(records, blocks_reverted(extra))
    seq = len(records) + 1
    assert detail == (
        f"record {seq}: blocks_reverted.first_block {extra} is below block {extra + 1},"
        " the oldest the undo journal can revert"
    )
    refused_alike(records, blocks_reverted(0))
    # The oldest block it holds can still go, and the fold goes on after a refusal.
    instance, reference = new_instance(), ReferenceFold()
    numbered = number_records([*records, blocks_reverted(extra + 1)])
    instance.apply_records([record.SerializeToString() for record in numbered])
    for record in numbered:
        reference.apply(record)
    assert view_of(instance).holdings[0].amount == u256(extra)  # its block stays
    assert view_of(instance).last_seq == seq
    for query in all_queries(reference):
        assert instance.query(query) == reference.query(query), query


def test_the_journal_drops_whole_blocks() -> None:
    full = [reclaimed(7) for _ in range(CHAIN_UNDO_ENTRIES_MAX)]
    # One more event of block 7 has no room: block 7 goes whole, that event with it.
    refused_alike([*full, reclaimed(7)], blocks_reverted(7))
    instance, _ = fold_both([*full, reclaimed(7), blocks_reverted(8)])
    assert view_of(instance).reclaims == CHAIN_UNDO_ENTRIES_MAX + 1
    # An event of block 8 makes block 7 go: block 8 can be reverted, 7 no longer.
    refused_alike([*full, reclaimed(8)], blocks_reverted(7))
    instance, _ = fold_both([*full, reclaimed(8), blocks_reverted(8)])
    assert view_of(instance).reclaims == CHAIN_UNDO_ENTRIES_MAX


def test_an_event_out_of_block_order_ends_what_can_be_reverted() -> None:
    """A watcher logs blocks in order; if a log does not, reverting the newer blocks
    alone would not be exact, so reverts stop short of them."""
    records = [opened(), deposit(10, 5), deposit(12, 6), deposit(11, 7)]
    detail = refused_alike(records, blocks_reverted(12))
    assert "below block 13" in detail
    instance, _ = fold_both([*records, blocks_reverted(13)])
    assert view_of(instance).holdings[0].amount == u256(7)
    instance, _ = fold_both([*records, deposit(13, 8), blocks_reverted(13)])
    assert view_of(instance).holdings[0].amount == u256(7)


# ------------------------------------------------------------------ snapshots


def reorg_log() -> list[log_pb2.LogRecord]:
    """Orphaned events on two channels, one known only through them, then the canonical
    chain with some of them mined again."""
    return [
        opened(),
        deposit(10, 5),
        challenge(11, 1100, candidate(1)),
        deposit(12, 3, OTHER.channel_id),
        cleared(12),
        challenge(13, 1200, candidate(1)),
        reclaimed(13),
        processed(13),
        blocks_reverted(12),
        deposit(12, 4, OTHER.channel_id),
        concluded(14, 1014),
        blocks_reverted(14),
        processed(15),
    ]


def test_snapshot_restore_and_continue_equals_never_snapshotting() -> None:
    raw = [record.SerializeToString() for record in number_records(reorg_log())]
    whole, reference = fold_both(reorg_log())
    for cut in range(len(raw) + 1):
        first = new_instance()
        first.apply_records(raw[:cut])
        resumed = new_instance()
        resumed.restore(first.snapshot())
        assert resumed.snapshot() == first.snapshot()
        if raw[cut:]:
            resumed.apply_records(raw[cut:])
        assert resumed.snapshot() == whole.snapshot(), cut
        for query in all_queries(reference):
            assert resumed.query(query) == reference.query(query), (cut, query)


def test_a_full_journal_restores_to_the_same_bytes() -> None:
    """The ring wraps around in memory; the snapshot holds the entries oldest first."""
    records = [opened(), challenge(1, 5000, candidate(1))]
    records += [deposit(block, block) for block in range(2, CHAIN_UNDO_ENTRIES_MAX + 40)]
    records += [challenge(CHAIN_UNDO_ENTRIES_MAX + 41, 6000, candidate(2))]
    tail = [blocks_reverted(CHAIN_UNDO_ENTRIES_MAX), deposit(CHAIN_UNDO_ENTRIES_MAX + 1, 1)]
    raw = [record.SerializeToString() for record in number_records([*records, *tail])]
    whole = new_instance()
    whole.apply_records(raw)
    first = new_instance()
    first.apply_records(raw[: len(records)])
    resumed = new_instance()
    resumed.restore(first.snapshot())
    assert resumed.snapshot() == first.snapshot()
    resumed.apply_records(raw[len(records) :])
    assert resumed.snapshot() == whole.snapshot()
    assert view_of(resumed).challenge == candidate(1)
    assert view_of(resumed).holdings[0].amount == u256(1)


def _snapshot_of(records: list[log_pb2.LogRecord]) -> bytes:
    instance = new_instance()
    instance.apply_records([record.SerializeToString() for record in number_records(records)])
    return instance.snapshot()


def _refused(blob: bytes, message: str, code: int = 3) -> None:
    instance = new_instance()
    with pytest.raises(RecordRejectedError, match=message) as caught:
        instance.restore(blob)
    assert caught.value.code == code
    assert instance.snapshot() == new_instance().snapshot()


def test_a_snapshot_with_a_bad_journal_is_refused() -> None:
    # ... floor (u64), count (u32), then block (u64), chain time before it (u64), kind (u8).
    blob = _snapshot_of([processed(5, time_s=7)])
    assert blob[-29:] == bytes(8) + b"\x01\x00\x00\x00" + u64(5) + u64(0) + b"\x10"
    _refused(blob[:-1] + b"\x63", "snapshot undo kind 99")
    _refused(blob[:-29] + u64(6) + blob[-21:], "out of order")
    _refused(blob[:-9] + u64(8) + b"\x10", "out of order")  # later than the chain time
    _refused(blob[:-21] + (1025).to_bytes(4, "little") + blob[-17:], "1025 entries")
    _refused(blob[:-17], "truncated")
    _refused(blob + b"\x00", "trailing bytes")


def test_a_snapshot_whose_journal_names_an_unknown_channel_is_refused() -> None:
    blob = _snapshot_of([deposit(1, 5), deposit(2, 6)])
    last = blob.rindex(SPEC.channel_id)
    _refused(blob[:last] + OTHER.channel_id + blob[last + 32 :], "unknown channel")
    # The second deposit claims to have created the channel the first one created.
    assert blob[last + 32] == 0
    _refused(blob[: last + 32] + b"\x01" + blob[last + 33 :], "named before")


def test_a_snapshot_whose_journal_has_a_candidate_but_no_challenge_is_refused() -> None:
    first = candidate(1)
    blob = _snapshot_of([opened(), challenge(1, 1100, first), cleared(2)])
    at = blob.rindex(first.SerializeToString())
    # ... challenged (flag), finalizes_at (u64), has a challenge (flag), u32 length.
    flag = at - 4 - 1 - 8 - 1
    assert blob[flag] == 1
    _refused(blob[:flag] + b"\x00" + blob[flag + 1 :], "a challenge, not challenged")
    _refused(blob[:at] + b"\x0f" + blob[at + 1 :], "candidate: malformed protobuf", code=2)


def test_a_malformed_blocks_reverted_is_refused() -> None:
    bad = log_pb2.LogRecord(seq=2).SerializeToString()
    # chain_event { blocks_reverted { first_block as a length-delimited field } }
    bad += b"\x5a\x05" + b"\x8a\x01\x02" + b"\x0a\x00"
    instance, _ = fold_both([opened()])
    with pytest.raises(RecordRejectedError, match="first_block: wrong wire type") as caught:
        instance.apply_records([bad])
    assert caught.value.code == 2


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


# ------------------------------------------------------------------ random logs


@PROPERTY
@given(valid_logs(), st.data())
def test_a_revert_from_any_block_is_undone_or_refused_alike(
    records: list[log_pb2.LogRecord], data: st.DataObject
) -> None:
    blocks = [r.chain_event.block_number for r in records if r.HasField("chain_event")]
    first = data.draw(st.integers(0, max(blocks, default=0) + 2), label="first block")
    instance, reference = new_instance(), ReferenceFold()
    instance.apply_records([record.SerializeToString() for record in records])
    for record in records:
        reference.apply(record)
    (revert,) = number_records([blocks_reverted(first)], len(records) + 1)
    blob = instance.snapshot()
    if first < reference.undo_floor_block:
        with pytest.raises(RecordRejectedError) as expected:
            reference.apply(revert)
        with pytest.raises(RecordRejectedError) as caught:
            instance.apply_records([revert.SerializeToString()])
        assert caught.value.code == expected.value.code == CODE_REVERT_TOO_DEEP
        assert caught.value.detail == expected.value.detail
        assert instance.snapshot() == blob
    else:
        reference.apply(revert)
        instance.apply_records([revert.SerializeToString()])
    for query in all_queries(reference):
        assert instance.query(query) == reference.query(query), query
