"""The deriver over a real RocksDB event log: snapshots, restart, time travel, trap recovery."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from node.derive import (
    DeriveInstance,
    DeriveModule,
    Deriver,
    Limits,
    ModuleTrapError,
    RecordRejectedError,
    ReferenceFold,
    channel_view,
    channel_views,
    fold_range,
    instance_at,
    totals,
)
from node.log import EventLog
from node.proto import derive_pb2, log_pb2
from tests.derive.derive_strategies import (
    CHANNELS_WASM,
    PAYMENTS_WASM,
    ChannelSpec,
    accepted_state,
    all_queries,
    channel_spec,
    load_module,
    u256,
)
from tests.derive.payments_oracle import PaymentsOracle
from tests.derive.wat_modules import counter_module, trap_at


def dispute_record(
    chooser: random.Random, spec: ChannelSpec, turn: int, time_s: int
) -> log_pb2.LogRecord:
    """A challenge (with a candidate of ``turn`` or none), clearance, reclaim or conclusion."""
    record = log_pb2.LogRecord()
    event = record.chain_event
    event.block_time_s = time_s
    kind = chooser.choice(["challenge"] * 3 + ["bare challenge", "cleared"] * 2 + ["reclaimed"] * 2)
    if chooser.random() < 0.05:
        kind = "concluded"
    if kind.endswith("challenge"):
        event.challenge_registered.channel_id = spec.channel_id
        event.challenge_registered.finalizes_at = time_s + chooser.randrange(40)
        if kind == "challenge":
            state = accepted_state(spec, turn=turn, is_final=False, amounts=[3, 4], signers={0})
            event.challenge_registered.candidate.CopyFrom(state.accepted_state.signed_state)
    elif kind == "cleared":
        event.challenge_cleared.channel_id = spec.channel_id
    elif kind == "reclaimed":
        event.reclaimed.channel_id = spec.channel_id
    else:
        event.concluded.channel_id = spec.channel_id
        event.concluded.finalizes_at = time_s
    return record


def scripted_records(
    count: int, seed: int = 7, *, disputes: bool = False
) -> list[log_pb2.LogRecord]:
    """A deterministic mix of states, deposits and vouchers over six channels, and with
    ``disputes`` challenges, clearances, reclaims and conclusions."""
    chooser = random.Random(seed)
    specs = [channel_spec(number, 2 + number % 2) for number in range(6)]
    turns = [0] * len(specs)
    records = []
    for _ in range(count):
        index = chooser.randrange(len(specs))
        spec = specs[index]
        roll = chooser.random()
        if roll < 0.5:
            turns[index] += chooser.random() < 0.4
            signers = set(
                chooser.sample(range(spec.participants), chooser.randint(1, spec.participants))
            )
            records.append(
                accepted_state(
                    spec, turn=turns[index], is_final=False, amounts=[3, 4], signers=signers
                )
            )
        elif roll < 0.7:
            record = log_pb2.LogRecord()
            record.chain_event.block_time_s = 1000 + len(records)
            record.chain_event.deposited.channel_id = spec.channel_id
            record.chain_event.deposited.asset = bytes(20)
            record.chain_event.deposited.destination_holdings = u256(chooser.randrange(100))
            records.append(record)
        elif disputes and roll >= 0.85:
            records.append(dispute_record(chooser, spec, turns[index], 1000 + len(records)))
        else:
            record = log_pb2.LogRecord()
            record.accepted_voucher.sent = index % 2 == 0
            record.accepted_voucher.voucher.channel_id = spec.channel_id
            record.accepted_voucher.voucher.amount = u256(len(records))
            records.append(record)
    return records


def write_log(path: Path, records: list[log_pb2.LogRecord]) -> list[log_pb2.LogRecord]:
    """Append in batches of 50; returns the records as stored (with seq numbers)."""
    with EventLog.open(path) as log:
        for start in range(0, len(records), 50):
            log.append_batch(records[start : start + 50])
        return list(log.read())


def reference_at(records: list[log_pb2.LogRecord], seq: int) -> ReferenceFold:
    reference = ReferenceFold()
    for record in records[:seq]:
        reference.apply(record)
    return reference


def assert_matches(instance: DeriveInstance, reference: ReferenceFold) -> None:
    for query in all_queries(reference):
        assert instance.query(query) == reference.query(query), query


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, list[log_pb2.LogRecord]]:
    path = tmp_path / "log"
    return path, write_log(path, scripted_records(400, disputes=True))


def test_catch_up_snapshots_every_interval(stored: tuple[Path, list[log_pb2.LogRecord]]) -> None:
    path, records = stored
    module = load_module(CHANNELS_WASM)
    with EventLog.open(path) as log:
        deriver = Deriver(log, module, snapshot_interval_records=100, batch_records_max=30)
        assert deriver.cursor == 0
        assert deriver.catch_up() == 400
        assert deriver.cursor == 400
        snapshot = log.latest_snapshot(module.sha256)
        assert snapshot is not None
        # Batches end every 30 records; a snapshot follows the first batch end at least
        # 100 records after the previous one: 120, 240, 360.
        assert snapshot.seq == 360
        earlier = log.latest_snapshot(module.sha256, at_or_before=359)
        assert earlier is not None
        assert earlier.seq == 240
        assert_matches(deriver.instance, reference_at(records, 400))
        assert deriver.catch_up() == 0


def test_restart_restores_the_snapshot_and_replays_only_the_tail(
    stored: tuple[Path, list[log_pb2.LogRecord]],
) -> None:
    path, records = stored
    module = load_module(CHANNELS_WASM)
    with EventLog.open(path) as log:
        Deriver(log, module, snapshot_interval_records=150).catch_up(to_seq=300)
        assert log.latest_snapshot(module.sha256) is not None
    with EventLog.open(path) as log:
        restarted = Deriver(log, module, snapshot_interval_records=150)
        snapshot = log.latest_snapshot(module.sha256)
        assert snapshot is not None
        assert restarted.cursor == snapshot.seq
        assert restarted.catch_up() == 400 - snapshot.seq
        assert_matches(restarted.instance, reference_at(records, 400))
        assert totals(restarted.instance).records == 400


def test_time_travel_gives_the_state_as_of_any_seq(
    stored: tuple[Path, list[log_pb2.LogRecord]],
) -> None:
    path, records = stored
    module = load_module(CHANNELS_WASM)
    with EventLog.open(path) as log:
        deriver = Deriver(log, module, snapshot_interval_records=64)
        deriver.catch_up()
        for seq in (0, 1, 63, 64, 65, 200, 399, 400):
            past = deriver.state_at(seq)
            assert_matches(past, reference_at(records, seq))
        assert_matches(deriver.instance, reference_at(records, 400))


def test_a_snapshot_the_module_refuses_is_rebuilt_from_the_log(
    stored: tuple[Path, list[log_pb2.LogRecord]],
) -> None:
    path, records = stored
    module = load_module(CHANNELS_WASM)
    with EventLog.open(path) as log:
        log.put_snapshot(module.sha256, 350, b"not a snapshot")
        instance, cursor = instance_at(module, log, None)
        assert cursor == 400
        assert_matches(instance, reference_at(records, 400))


def test_a_snapshot_of_the_previous_format_is_rebuilt_from_the_log(
    stored: tuple[Path, list[log_pb2.LogRecord]],
) -> None:
    path, records = stored
    module = load_module(CHANNELS_WASM)
    instance = DeriveInstance(module)
    instance.apply_records([record.SerializeToString() for record in records[:350]])
    current = instance.snapshot()
    previous = current[:4] + (1).to_bytes(4, "little") + current[8:]
    with EventLog.open(path) as log:
        log.put_snapshot(module.sha256, 350, previous)
        rebuilt, cursor = instance_at(module, log, None)
        assert cursor == 400
        assert_matches(rebuilt, reference_at(records, 400))
        deriver = Deriver(log, module)
        assert deriver.cursor == 350
        assert deriver.instance.snapshot() == current
    views = list(channel_views(rebuilt))
    assert any(view.HasField("challenge") for view in views)
    assert any(view.reclaims for view in views)
    assert any(view.concluded for view in views)


def test_swapping_modules_derives_another_view_from_the_same_log(
    stored: tuple[Path, list[log_pb2.LogRecord]],
) -> None:
    path, records = stored
    channels, payments = load_module(CHANNELS_WASM), load_module(PAYMENTS_WASM)
    assert channels.sha256 != payments.sha256
    with EventLog.open(path) as log:
        Deriver(log, channels, snapshot_interval_records=100).catch_up()
        deriver = Deriver(log, payments, snapshot_interval_records=100)
        assert deriver.cursor == 0  # the other module's snapshots are not its own
        deriver.catch_up()
        oracle = PaymentsOracle()
        for record in records:
            oracle.apply(record)
        query = derive_pb2.Query(list_counterparties=derive_pb2.ListCounterparties())
        answer = deriver.query(query)
        assert answer == oracle.query(query)
        assert len(answer.counterparties.counterparties) > 0
        restarted = Deriver(log, payments)
        own = log.latest_snapshot(payments.sha256)
        assert own is not None
        assert restarted.cursor == own.seq


def test_views_helpers_page_through_channels(stored: tuple[Path, list[log_pb2.LogRecord]]) -> None:
    path, records = stored
    with EventLog.open(path) as log:
        instance, _ = instance_at(load_module(CHANNELS_WASM), log, None)
    reference = reference_at(records, 400)
    views = list(channel_views(instance))
    with EventLog.open(path) as log:
        deriver = Deriver(log, load_module(CHANNELS_WASM))
        deriver.catch_up()
        assert deriver.channels() == views
        assert deriver.channel(views[1].channel_id) == views[1]
        assert deriver.channel(b"\x01" * 32) is None
        assert deriver.totals() == totals(instance)
    assert [view.channel_id for view in views] == sorted(reference.channels)
    assert channel_view(instance, views[0].channel_id) == views[0]
    assert channel_view(instance, b"\x00" * 32) is None


def test_a_trap_restores_the_last_snapshot_and_never_writes_the_log(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = write_log(path, scripted_records(40))
    module = DeriveModule(counter_module(on_record=trap_at(25)), name="trap25.wasm")
    with EventLog.open(path) as log:
        head = log.head_hash
        deriver = Deriver(log, module, snapshot_interval_records=10, batch_records_max=10)
        with pytest.raises(ModuleTrapError, match="UNREACHABLE"):
            deriver.catch_up()
        assert deriver.cursor == 20
        assert deriver.query_cursor() == 20  # rebuilt from the snapshot at 20
        assert log.last_seq == len(records)
        assert log.head_hash == head
        assert log.verify().ok


def test_running_out_of_fuel_keeps_the_state_before_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = write_log(path, scripted_records(300))
    module = load_module(CHANNELS_WASM)
    with EventLog.open(path) as log:
        # Records 1..50 take ~0.45 M fuel, 51..300 ~1.8 M: a 1 M budget fails the latter.
        limits = Limits(fuel_per_call=1_000_000)
        deriver = Deriver(log, module, limits=limits, batch_records_max=300)
        deriver.catch_up(to_seq=50)
        with pytest.raises(ModuleTrapError) as caught:
            deriver.catch_up()
        assert caught.value.trap_code == "OUT_OF_FUEL"
        assert deriver.cursor == 50
        assert_matches(deriver.instance, reference_at(records, 50))
        deriver.batch_records_max = 25
        deriver.catch_up()
        assert_matches(deriver.instance, reference_at(records, 300))


def test_a_refused_record_stops_the_cursor_before_it(tmp_path: Path) -> None:
    path = tmp_path / "log"
    spec = channel_spec(1, 2)
    good = accepted_state(spec, turn=1, is_final=False, amounts=[1], signers={0, 1})
    bad = log_pb2.LogRecord()
    bad.accepted_voucher.voucher.channel_id = b"too short"
    write_log(path, [good, good, bad, good])
    with EventLog.open(path) as log:
        deriver = Deriver(log, load_module(CHANNELS_WASM))
        with pytest.raises(RecordRejectedError, match=r"record 3: voucher\.channel_id") as caught:
            deriver.catch_up()
        assert caught.value.code == 3
        assert deriver.cursor == 2


def test_long_ranges_fold_through_the_read_ahead_thread(tmp_path: Path) -> None:
    path = tmp_path / "log"
    spec = channel_spec(1, 2)
    payloads = []
    for amount in range(60_000):
        record = log_pb2.LogRecord()
        record.accepted_voucher.sent = True
        record.accepted_voucher.voucher.channel_id = spec.channel_id
        record.accepted_voucher.voucher.amount = u256(amount)
        payloads.append(record.SerializeToString())
    with EventLog.open(path) as log:
        for start in range(0, len(payloads), 10_000):
            log.append_payloads(payloads[start : start + 10_000], time_ms=1)
        instance = DeriveInstance(load_module(CHANNELS_WASM))
        assert fold_range(instance, log, 1, log.last_seq) == 60_000
        view = channel_view(instance, spec.channel_id)
        assert view is not None
        assert view.vouchers == 60_000
        assert view.paid == u256(59_999)
        bad = log_pb2.LogRecord()
        bad.accepted_voucher.voucher.channel_id = b"short"
        log.append_batch([bad, bad])
        deriver = Deriver(log, load_module(CHANNELS_WASM))
        with pytest.raises(RecordRejectedError, match="record 60001: "):
            deriver.catch_up()
        assert deriver.cursor == 60_000
        assert deriver.instance.snapshot() == instance.snapshot()


def test_out_of_memory_is_an_error_code_and_the_state_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "log"
    records = []
    for number in range(4000):
        record = log_pb2.LogRecord()
        record.chain_event.deposited.channel_id = number.to_bytes(32, "big")
        record.chain_event.deposited.asset = bytes(20)
        record.chain_event.deposited.destination_holdings = u256(number)
        records.append(record)
    write_log(path, records)
    module = load_module(CHANNELS_WASM)
    with EventLog.open(path) as log:
        deriver = Deriver(
            log,
            module,
            limits=Limits(memory_bytes=1 << 20),
            batch_records_max=500,
        )
        with pytest.raises(RecordRejectedError, match="out of memory") as caught:
            deriver.catch_up()
        assert caught.value.code == 6
        stopped = deriver.cursor
        assert 0 < stopped < 4000
        assert stopped % 500 == 0
        assert deriver.query_cursor() == stopped
        assert totals(deriver.instance).channels == stopped


def test_a_snapshot_that_does_not_fit_is_refused_and_the_state_kept() -> None:
    instance = DeriveInstance(load_module(CHANNELS_WASM), Limits(memory_bytes=1 << 20))
    records = []
    for number in range(1000):
        record = log_pb2.LogRecord(seq=number + 1)
        record.accepted_voucher.voucher.channel_id = number.to_bytes(32, "big")
        records.append(record.SerializeToString())
    instance.apply_records(records)
    with pytest.raises(RecordRejectedError, match="snapshot returned error code 6: out of memory"):
        instance.snapshot()
    assert totals(instance).channels == 1000


def test_records_folded_ahead_of_the_log_are_confirmed_or_rolled_back(tmp_path: Path) -> None:
    """The engine folds a step's records before they are written: once written they are
    confirmed; if the write fails the state is the log's again, as if never folded."""
    records = scripted_records(300, disputes=True)
    module = load_module(CHANNELS_WASM)
    with EventLog.open(tmp_path / "log") as log:
        log.append_batch(records[:100])
        deriver = Deriver(log, module, batch_records_max=40)
        deriver.catch_up()
        logged = list(log.read())
        before = [deriver.instance.query(q) for q in all_queries(reference_at(logged, 100))]
        prepared = log.prepare(records[100:200])
        deriver.fold_ahead(101, prepared.values)
        assert (deriver.cursor, deriver.tentative) == (200, True)
        stored = [log_pb2.LogRecord.FromString(value) for value in prepared.values]
        assert_matches(deriver.instance, reference_at(logged + stored, 200))
        deriver.roll_back()  # the write failed
        assert (deriver.cursor, deriver.tentative) == (100, False)
        after = [deriver.instance.query(q) for q in all_queries(reference_at(logged, 100))]
        assert after == before
        prepared = log.prepare(records[100:300])
        deriver.fold_ahead(101, prepared.values)
        log.commit(prepared)
        deriver.confirm()
        assert (deriver.cursor, deriver.tentative) == (300, False)
        assert_matches(deriver.instance, reference_at(list(log.read()), 300))
        blob = deriver.snapshot_blob()
        restored = DeriveInstance(module)
        restored.restore(blob)
        assert_matches(restored, reference_at(list(log.read()), 300))


def test_a_deriver_can_start_where_a_snapshot_of_the_engine_stands(tmp_path: Path) -> None:
    records = scripted_records(250)
    module = load_module(CHANNELS_WASM)
    with EventLog.open(tmp_path / "log") as log:
        log.append_batch(records)
        Deriver(log, module, snapshot_interval_records=100).catch_up()
        at = Deriver(log, module, at_seq=150)
        assert at.cursor == 150
        assert_matches(at.instance, reference_at(list(log.read()), 150))
