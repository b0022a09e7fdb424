"""The payments module (a second, swappable module) agrees with its Python oracle."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.derive import DeriveInstance
from node.proto import derive_pb2, log_pb2
from tests.derive.derive_strategies import PAYMENTS_WASM, load_module, valid_logs
from tests.derive.payments_oracle import PaymentsOracle

LIST = derive_pb2.Query(list_counterparties=derive_pb2.ListCounterparties())
CURSOR = derive_pb2.Query(get_cursor=derive_pb2.GetCursor())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_logs(max_records=60), st.data())
def test_payments_match_the_oracle_across_snapshots(
    records: list[log_pb2.LogRecord], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(records)), label="snapshot after")
    first = DeriveInstance(load_module(PAYMENTS_WASM))
    first.apply_records([record.SerializeToString() for record in records[:cut]])
    resumed = DeriveInstance(load_module(PAYMENTS_WASM))
    resumed.restore(first.snapshot())
    oracle = PaymentsOracle()
    for record in records[:cut]:
        oracle.apply(record)
    for record in records[cut:]:
        resumed.apply_records([record.SerializeToString()])
        oracle.apply(record)
        assert resumed.query(LIST) == oracle.query(LIST)
    assert resumed.query(CURSOR) == oracle.query(CURSOR)
    assert resumed.query(LIST) == oracle.query(LIST)


def test_payments_module_declines_channel_queries() -> None:
    instance = DeriveInstance(load_module(PAYMENTS_WASM))
    answer = instance.query(derive_pb2.Query(get_totals=derive_pb2.GetTotals()))
    assert answer.status == derive_pb2.QUERY_STATUS_BAD_QUERY
    assert "list_counterparties" in answer.detail


def test_recent_payments_keep_the_latest_eight() -> None:
    from tests.derive.derive_strategies import accepted_state, channel_spec, number_records, u256

    spec = channel_spec(3, 2)
    records = [accepted_state(spec, turn=1, is_final=False, amounts=[9], signers={0, 1})]
    for amount in range(1, 13):
        record = log_pb2.LogRecord()
        record.accepted_voucher.sent = True
        record.accepted_voucher.voucher.channel_id = spec.channel_id
        record.accepted_voucher.voucher.amount = u256(amount * 10)
        records.append(record)
    instance = DeriveInstance(load_module(PAYMENTS_WASM))
    instance.apply_records([record.SerializeToString() for record in number_records(records)])
    (party,) = instance.query(LIST).counterparties.counterparties
    assert party.address == spec.fixed.participants[-1]
    assert party.sent == u256(120)
    assert party.payments == 12
    assert [payment.seq for payment in party.recent] == list(range(6, 14))
    assert all(payment.amount == u256(10) for payment in party.recent)
