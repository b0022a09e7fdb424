"""Hostile input never traps the reference modules: bad bytes get error codes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.derive import DeriveInstance, RecordRejectedError
from node.proto import derive_pb2, log_pb2
from tests.derive.derive_strategies import (
    CHANNELS_WASM,
    PAYMENTS_WASM,
    load_module,
    valid_logs,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODULES = st.sampled_from([CHANNELS_WASM, PAYMENTS_WASM])


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bytes changed, cut or inserted."""
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        position = draw(st.integers(0, max(len(buffer) - 1, 0)))
        if action == "flip" and buffer:
            buffer[position] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del buffer[position : position + draw(st.integers(1, 8))]
        else:
            buffer[position:position] = draw(st.binary(min_size=1, max_size=4))
    return bytes(buffer)


@FUZZ
@given(MODULES, valid_logs(max_records=12), st.data())
def test_mutated_records_never_trap(
    path: object, records: list[log_pb2.LogRecord], data: st.DataObject
) -> None:
    from pathlib import Path

    instance = DeriveInstance(load_module(Path(str(path))))
    raw = [record.SerializeToString() for record in records]
    if raw:
        index = data.draw(st.integers(0, len(raw) - 1), label="record to damage")
        raw[index] = data.draw(mutated(raw[index]), label="damaged record")
    refusal: RecordRejectedError | None = None
    try:
        instance.apply_records(raw)
    except RecordRejectedError as error:
        refusal = error
    if refusal is not None:
        assert refusal.code in (1, 2, 3, 4, 5, 8), refusal
        assert refusal.detail.startswith("record "), refusal.detail
    cursor = instance.query(derive_pb2.Query(get_cursor=derive_pb2.GetCursor()))
    assert cursor.cursor.last_seq <= len(records)
    blob = instance.snapshot()
    copy = DeriveInstance(load_module(Path(str(path))))
    copy.restore(blob)
    assert copy.snapshot() == blob


@FUZZ
@given(MODULES, valid_logs(max_records=12), st.data())
def test_mutated_snapshots_are_refused_or_restored_never_trap(
    path: object, records: list[log_pb2.LogRecord], data: st.DataObject
) -> None:
    from pathlib import Path

    module = load_module(Path(str(path)))
    instance = DeriveInstance(module)
    instance.apply_records([record.SerializeToString() for record in records])
    blob = instance.snapshot()
    damaged = data.draw(mutated(blob), label="damaged snapshot")
    target = DeriveInstance(module)
    before = target.snapshot()
    refusal: RecordRejectedError | None = None
    try:
        target.restore(damaged)
    except RecordRejectedError as error:
        refusal = error
    if refusal is not None:
        assert refusal.code in (2, 3), refusal
        assert target.snapshot() == before
        return
    # Accepted: it must then be a state the module can serve and snapshot again.
    again = target.snapshot()
    DeriveInstance(module).restore(again)
    target.query(derive_pb2.Query(list_channels=derive_pb2.ListChannels()))
    target.query(derive_pb2.Query(get_totals=derive_pb2.GetTotals()))


@FUZZ
@given(st.binary(max_size=200))
def test_random_queries_get_an_answer(query: bytes) -> None:
    instance = DeriveInstance(load_module(CHANNELS_WASM))
    pointer = instance._write_input(query)
    assert instance._call("query", pointer, len(query)) == 0
    result = derive_pb2.QueryResult()
    result.ParseFromString(instance._read_output())
