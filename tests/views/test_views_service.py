"""A node's views: loaded from the home and from --view files, folded as the log grows,
added and removed while running; a view whose module traps, loops, refuses a record or
writes bad rows is disabled with the error, and the others go on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from node.core.constants import (
    views_fold_share_max,
    views_refresh_interval_ms,
    views_refresh_interval_ms_max,
)
from node.derive import DeriveModule, Limits
from node.log import EventLog
from node.views import ViewCatalog, ViewError, ViewOptions, ViewService
from node.views._service import _pause_after
from tests.derive.derive_strategies import (
    CHANNELS_WASM,
    PAYMENTS_WASM,
    accepted_state,
    channel_spec,
    load_module,
)
from tests.derive.wat_modules import INFINITE_LOOP, counter_module, trap_at
from tests.views.views_support import KINDS_WASM, append, counts_schema, tables_module, write_module


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EventLog]:
    with EventLog.open(tmp_path / "log") as opened:
        yield opened


def _service(tmp_path: Path, log: EventLog, **options: object) -> ViewService:
    return ViewService(
        tmp_path / "views",
        log,
        engine_module=load_module(CHANNELS_WASM),
        options=ViewOptions(**options),  # type: ignore[arg-type]
    )


@pytest.fixture
async def nursery() -> AsyncIterator[trio.Nursery]:
    async with trio.open_nursery() as opened:
        yield opened
        opened.cancel_scope.cancel()


async def _caught_up(
    service: ViewService, log: EventLog, *names: str
) -> dict[str, dict[str, object]]:
    """Each view's info once the named ones are at the log's end (or disabled)."""
    service.log_advanced()
    with trio.fail_after(30):
        while True:
            views = {str(view["name"]): view for view in service.views()}
            if all(
                views[name]["state"] == "disabled" or views[name]["cursor"] == log.last_seq
                for name in names
            ):
                return views
            await trio.sleep(0.02)


def _records(count: int) -> list:
    spec = channel_spec(1, 2)
    return [
        accepted_state(spec, turn=turn, is_final=False, amounts=[5, 5], signers={0, 1})
        for turn in range(count)
    ]


async def test_views_fold_as_the_log_grows_and_answer_sql(
    tmp_path: Path, log: EventLog, nursery: trio.Nursery
) -> None:
    service = _service(tmp_path, log)
    service.load([PAYMENTS_WASM])
    await nursery.start(service.run)
    append(log, _records(6))
    views = await _caught_up(service, log, "engine", "payments")
    assert [views[name]["state"] for name in ("engine", "payments")] == ["running"] * 2
    assert views["engine"]["engine"] is True
    answer = await service.query("SELECT status, turn_num FROM engine.channels")
    assert answer.rows == [["open", 5]]
    assert (await service.query("SELECT last_seq FROM payments.totals")).rows == [[6]]


async def test_views_are_added_and_removed_while_running(
    tmp_path: Path, log: EventLog, nursery: trio.Nursery
) -> None:
    service = _service(tmp_path, log)
    service.load()
    await nursery.start(service.run)
    append(log, _records(3))
    added = await service.add("kinds", KINDS_WASM.read_bytes())
    assert [table["name"] for table in added["tables"]] == [  # type: ignore[union-attr]
        "record_kinds",
        "voucher_channels",
        "totals",
    ]
    await _caught_up(service, log, "kinds")
    answer = await service.query("SELECT name, records FROM kinds.record_kinds")
    assert answer.rows == [["ACCEPTED_STATE", 3]]
    with pytest.raises(ViewError, match="exists already"):
        await service.add("kinds", KINDS_WASM.read_bytes())
    with pytest.raises(ViewError, match="not a WebAssembly module"):
        await service.add("junk", b"junk")
    with pytest.raises(ViewError, match="view name"):
        await service.add("Bad Name", KINDS_WASM.read_bytes())
    await service.remove("kinds")
    assert not ViewCatalog(tmp_path / "views").database_path("kinds").exists()
    assert [view["name"] for view in service.views()] == ["engine"]
    with pytest.raises(ViewError, match="engine's module: it stays"):
        await service.remove("engine")
    with pytest.raises(ViewError, match="no view named"):
        await service.remove("kinds")


@pytest.mark.parametrize(
    ("wasm", "limits", "error"),
    [
        (counter_module(on_record=trap_at(4)), None, "ModuleTrapError: apply_batch trapped"),
        (counter_module(on_record=INFINITE_LOOP), Limits(fuel_per_call=5_000_000), "OUT_OF_FUEL"),
        (
            counter_module(
                on_record="(if (i32.eq (global.get $count) (i32.const 3))"
                " (then (return (i32.const 3))))"
            ),
            None,
            "RecordRejectedError: apply_batch returned error code 3",
        ),
        (tables_module(counts_schema(), b"\x0a\x02\x08\x05"), None, "BadRowsError: change 0"),
    ],
)
async def test_a_failing_view_is_disabled_and_the_others_go_on(
    tmp_path: Path,
    log: EventLog,
    nursery: trio.Nursery,
    wasm: bytes,
    limits: Limits | None,
    error: str,
) -> None:
    service = _service(tmp_path, log, limits=limits, batch_records_max=1)
    service.load([write_module(tmp_path / "bad.wasm", wasm), PAYMENTS_WASM])
    await nursery.start(service.run)
    append(log, _records(8))
    views = await _caught_up(service, log, "engine", "payments", "bad")
    assert views["bad"]["state"] == "disabled"
    assert error in str(views["bad"]["error"])
    assert views["engine"]["cursor"] == views["payments"]["cursor"] == 8
    append(log, _records(2))  # the others keep folding
    views = await _caught_up(service, log, "engine", "payments")
    assert views["engine"]["cursor"] == 10
    assert views["bad"]["cursor"] < 8
    assert (await service.query("SELECT count(*) FROM engine.channels")).rows == [[1]]


def test_a_view_file_that_is_no_module_stops_the_start(tmp_path: Path, log: EventLog) -> None:
    service = _service(tmp_path, log)
    with pytest.raises(ViewError, match="not a WebAssembly module"):
        service.load([write_module(tmp_path / "junk.wasm", b"junk")])
    with pytest.raises(ViewError, match="cannot read"):
        service.load([tmp_path / "missing.wasm"])
    with pytest.raises(ViewError, match="is the engine's view"):
        service.load([write_module(tmp_path / "engine.wasm", PAYMENTS_WASM.read_bytes())])


def test_a_view_whose_module_file_is_gone_is_listed_disabled(tmp_path: Path, log: EventLog) -> None:
    service = _service(tmp_path, log)
    service.load([PAYMENTS_WASM])
    catalog = ViewCatalog(tmp_path / "views")
    entry = catalog.find("payments")
    assert entry is not None
    catalog.module_path(entry.sha256).write_bytes(b"changed")
    again = _service(tmp_path, log)
    again.load()
    (payments,) = [view for view in again.views() if view["name"] == "payments"]
    assert payments["state"] == "disabled"
    assert "does not hold the module it names" in str(payments["error"])


async def test_a_restart_picks_up_where_each_view_stood(tmp_path: Path, log: EventLog) -> None:
    append(log, _records(5))
    for round_ in range(2):
        service = _service(tmp_path, log, snapshot_interval_records=2)
        service.load([PAYMENTS_WASM] if round_ == 0 else [])
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            views = await _caught_up(service, log, "engine", "payments")
            assert {name: view["cursor"] for name, view in views.items()} == {
                "engine": log.last_seq,
                "payments": log.last_seq,
            }
            nursery.cancel_scope.cancel()
        append(log, _records(3))  # folded by the next service at its start


async def test_the_engine_view_follows_the_engine_module(tmp_path: Path, log: EventLog) -> None:
    append(log, _records(3))
    service = _service(tmp_path, log)
    service.load()
    entry = ViewCatalog(tmp_path / "views").find("engine")
    assert entry is not None
    assert entry.sha256 == load_module(CHANNELS_WASM).sha256_hex
    # Another engine module (the same code, another custom section): the view follows.
    wasm = CHANNELS_WASM.read_bytes() + b"\x00\x05\x04test"
    replaced = ViewService(tmp_path / "views", log, engine_module=DeriveModule(wasm))
    replaced.load()
    entry = ViewCatalog(tmp_path / "views").find("engine")
    assert entry is not None
    assert entry.sha256 == DeriveModule(wasm).sha256_hex
    # A module without tables has no view.
    bare = ViewService(tmp_path / "views", log, engine_module=DeriveModule(counter_module()))
    bare.load()
    assert ViewCatalog(tmp_path / "views").find("engine") is None


def test_views_fold_at_most_a_share_of_the_time() -> None:
    interval_s = views_refresh_interval_ms / 1000
    assert _pause_after(0.0) == interval_s  # quick folds: the refresh interval
    slow_s = 0.05
    pause_s = _pause_after(slow_s)
    assert pause_s > interval_s
    assert slow_s / (slow_s + pause_s) == pytest.approx(views_fold_share_max)
    assert _pause_after(3600.0) == views_refresh_interval_ms_max / 1000  # bounded lag
