"""Property: whatever batches are appended, reading returns exactly them, in order."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.log import KIND_BY_CASE, EventLog
from node.proto import log_pb2
from tests.log.log_samples import sample_records

batch_plans = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=60),  # batch size
        st.integers(min_value=0, max_value=2**64 - 1),  # time_ms
        st.booleans(),  # through the fast path
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=batch_plans, seed=st.integers(min_value=0, max_value=2**16))
@pytest.mark.slow
def test_read_returns_exactly_what_was_appended(
    plan: list[tuple[int, int, bool]], seed: int
) -> None:
    appended: list[log_pb2.LogRecord] = []
    with tempfile.TemporaryDirectory() as directory, EventLog.open(Path(directory)) as log:
        for number, (size, time_ms, fast) in enumerate(plan):
            records = sample_records(size, seed=seed + number, time_ms=time_ms)
            if fast:
                payloads = [_without_time(record).SerializeToString() for record in records]
                seq_range = log.append_payloads(payloads, time_ms=time_ms)
            else:
                seq_range = log.append_batch(records)
            assert seq_range.first == len(appended) + 1
            assert len(seq_range) == size
            appended.extend(records)
        stored = list(log.read())
        assert [record.seq for record in stored] == list(range(1, len(appended) + 1))
        for given_record, record in zip(appended, stored, strict=True):
            case = given_record.WhichOneof("payload")
            assert case is not None
            assert record.kind == KIND_BY_CASE[case]
            assert record.time_ms == given_record.time_ms
            assert getattr(record, case) == getattr(given_record, case)
        middle = len(appended) // 2 + 1
        assert [r.seq for r in log.read(middle, middle + 3)] == list(
            range(middle, min(middle + 3, len(appended)) + 1)
        )
        assert log.verify().ok


def _without_time(record: log_pb2.LogRecord) -> log_pb2.LogRecord:
    bare = log_pb2.LogRecord()
    bare.CopyFrom(record)
    bare.ClearField("time_ms")
    return bare
