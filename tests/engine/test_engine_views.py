"""Views beside a running engine: the engine's hook wakes them after each durable step;
a view module that traps mid-log is disabled and the node keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.chain import ChainClient
from node.views import ViewService
from tests.derive.wat_modules import counter_module, trap_at
from tests.engine.engine_support import NATIVE, Setting, open_ledger, start_parties
from tests.views.views_support import write_module

pytestmark = [pytest.mark.slow, pytest.mark.integration]


async def _views_at(views: ViewService, seq: int, *names: str) -> dict[str, dict[str, object]]:
    while True:
        found = {str(view["name"]): view for view in views.views()}
        if all(found[n]["state"] == "disabled" or found[n]["cursor"] == seq for n in names):
            return found
        await trio.sleep(0.02)


async def test_a_trapping_view_is_disabled_and_the_node_keeps_serving(
    setting: Setting, chain_snapshot: ChainClient, tmp_path: Path
) -> None:
    alice, bob = setting.pair()
    trapping = write_module(tmp_path / "trapping.wasm", counter_module(on_record=trap_at(3)))
    views = ViewService(tmp_path / "views", alice.log, engine_module=setting.module)
    views.load([trapping])
    alice.engine.on_committed = views.log_advanced
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            await nursery.start(views.run)
            first = await open_ledger(alice, bob, 5, 3)
            second = await open_ledger(alice, bob, 2, 2)  # served after the trap
            found = await _views_at(views, alice.log.last_seq, "engine", "trapping")
            assert found["trapping"]["state"] == "disabled"
            assert "trapped" in str(found["trapping"]["error"])
            assert found["engine"]["state"] == "running"
            answer = await views.query(
                "SELECT c.channel_id, c.status, h.amount FROM channels c"
                " JOIN holdings h USING (channel_id) ORDER BY h.amount"
            )
            assert answer.rows == [
                ["0x" + second.hex(), "open", "4"],
                ["0x" + first.hex(), "open", "8"],
            ]
            for channel in (first, second):
                view = await alice.engine.ledger_channel(channel)
                assert view["status"] == "OPEN"
                assert view["holdings"][0]["asset"] == NATIVE
            nursery.cancel_scope.cancel()
    for party in (alice, bob):
        assert party.log.verify().ok
        party.close()
