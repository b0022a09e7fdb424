"""Three engines in one process: Alice opens a virtual channel to Bob through Irene."""

from __future__ import annotations

import pytest
import trio

from node.protocols import ObjectiveKind
from tests.actors import BOB, IRENE
from tests.engine.engine_support import (
    Setting,
    allocations,
    open_ledger,
    start_parties,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


async def test_virtual_channel_through_one_intermediary_opens(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            left = await open_ledger(alice, irene, 10)
            right = await open_ledger(irene, bob, 10)
            fund_id = await alice.engine.create_payment_channel(BOB.address, [IRENE.address], 4)
            assert fund_id.kind is ObjectiveKind.VIRTUAL_FUND
            entries = [await party.engine.wait_objective(fund_id) for party in parties]
            assert [entry.failure for entry in entries] == [None, None, None]
            assert [entry.done for entry in entries] == [True, True, True]
            channel = fund_id.channel_id
            for party in (alice, bob):
                await until(
                    lambda p=party: p.engine.payment_channel(channel),  # type: ignore[misc]
                    lambda value: value["status"] == "OPEN",
                )
            info = await alice.engine.payment_channel(channel)
            assert info["funds"] == "4"
            assert info["intermediaries"] == [IRENE.address]
            for party in (alice, irene):
                assert await allocations(party, left) == [6, 0, 4]
            for party in (irene, bob):
                assert await allocations(party, right) == [6, 0, 4]
            nursery.cancel_scope.cancel()
    for party in parties:
        names = [name for name, _ in party.notifications]
        assert "payment_channel_updated" in names
        assert party.log.verify().ok
        party.close()
