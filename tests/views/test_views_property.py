"""For random logs, a view's SQL tables equal what the module itself answers and what
the Python oracles fold, whatever the batches, across restarts, snapshot restores and a
lost database (rebuilt from the module's snapshot in the log and the log)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.derive import (
    DeriveModule,
    ReferenceFold,
    channel_table_rows,
    channel_views,
    instance_at,
    totals,
)
from node.log import EventLog
from node.proto import log_pb2
from node.views import View, ViewEntry, ViewOptions, run_query
from tests.derive.derive_strategies import CHANNELS_WASM, PAYMENTS_WASM, load_module, valid_logs
from tests.derive.payments_oracle import PaymentsOracle
from tests.views.views_support import KINDS_WASM, KindsOracle, Rows, append

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _plans(draw: st.DrawFn) -> tuple[list[log_pb2.LogRecord], list[tuple[str, int]]]:
    """A log, and what happens as it grows: after each chunk of records appended, the
    view folds some, restarts, loses its database, or the log gains a module snapshot."""
    records = draw(valid_logs(max_records=50))
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["fold", "fold", "restart", "lose", "log snapshot"]),
                st.integers(1, 12),
            ),
            max_size=12,
        )
    )
    return records, steps


def _options(draw: st.DataObject) -> ViewOptions:
    return ViewOptions(
        snapshot_interval_records=draw.draw(st.integers(1, 20)),
        transaction_records_max=draw.draw(st.integers(1, 15)),
        batch_records_max=draw.draw(st.integers(1, 8)),
    )


def _sql_rows(path: Path, tables: list[str]) -> Rows:
    return {
        name: {tuple(row) for row in run_query({"v": path}, f"SELECT * FROM v.{name}").rows}
        for name in tables
    }


def _run_plan(
    module: DeriveModule,
    records: list[log_pb2.LogRecord],
    steps: list[tuple[str, int]],
    options: ViewOptions,
    directory: Path,
) -> Path:
    """Grow a log by the plan while a view folds it; returns the view's database, caught
    up with the whole log."""
    path = directory / "view.sqlite"
    entry = ViewEntry("v", module.sha256_hex)
    with EventLog.open(directory / "log") as log:
        view = View(entry, module, path, options)
        view.open(log)
        position = 0
        for action, amount in [*steps, ("fold", len(records))]:
            append(log, records[position : position + amount])
            position = min(position + amount, len(records))
            if action == "fold":
                view.catch_up(log, amount)
            elif action == "log snapshot":
                instance, seq = instance_at(module, log, None)
                log.put_snapshot(module.sha256, seq, instance.snapshot())
            else:
                view.close()
                if action == "lose":
                    path.unlink()
                view = View(entry, module, path, options)
                view.open(log)
        append(log, records[position:])
        while view.catch_up(log, 1000):
            pass
        assert view.error is None, view.error
        assert view.cursor == log.last_seq == len(records)
        view.close()
    return path


def _module_answers(module: DeriveModule, directory: Path, chain_time_s: int) -> Rows:
    """The reference module's tables from its own query answers."""
    with EventLog.open(directory / "log", read_only=True) as log:
        instance, _ = instance_at(module, log, None)
        return channel_table_rows(channel_views(instance), totals(instance), chain_time_s)


@PROPERTY
@given(plan=_plans(), draw=st.data())
def test_channel_tables_equal_the_module_answers_and_the_reference_fold(
    plan: tuple[list[log_pb2.LogRecord], list[tuple[str, int]]], draw: st.DataObject
) -> None:
    records, steps = plan
    module = load_module(CHANNELS_WASM)
    reference = ReferenceFold()
    for record in records:
        reference.apply(record)
    expected = reference.table_rows()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        path = _run_plan(module, records, steps, _options(draw), directory)
        tables = _sql_rows(path, sorted(expected))
        assert tables == expected
        assert tables == _module_answers(module, directory, reference.chain_time_s)


def _check_against(
    module_path: Path,
    oracle: Callable[[], object],
    plan: tuple[list[log_pb2.LogRecord], list[tuple[str, int]]],
    draw: st.DataObject,
) -> None:
    records, steps = plan
    folded = oracle()
    for record in records:
        folded.apply(record)  # type: ignore[attr-defined]
    expected: Rows = folded.table_rows()  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as scratch:
        path = _run_plan(load_module(module_path), records, steps, _options(draw), Path(scratch))
        assert _sql_rows(path, sorted(expected)) == expected


@settings(PROPERTY, max_examples=15)
@given(plan=_plans(), draw=st.data())
def test_payment_tables_equal_the_payments_oracle(
    plan: tuple[list[log_pb2.LogRecord], list[tuple[str, int]]], draw: st.DataObject
) -> None:
    _check_against(PAYMENTS_WASM, PaymentsOracle, plan, draw)


@settings(PROPERTY, max_examples=15)
@given(plan=_plans(), draw=st.data())
def test_the_c_example_tables_equal_its_oracle(
    plan: tuple[list[log_pb2.LogRecord], list[tuple[str, int]]], draw: st.DataObject
) -> None:
    _check_against(KINDS_WASM, KindsOracle, plan, draw)
