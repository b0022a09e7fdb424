"""A reorganisation orphans a deposit the node had seen: the derived holdings go back,
the funding waits (without depositing twice) until the deposit is canonical again."""

from __future__ import annotations

import pytest
import trio

from node.chain import ChainClient
from node.log import EventLog
from node.proto import log_pb2
from tests.actors import ALICE, BOB
from tests.engine.engine_support import Party, Setting, eventually, start_parties
from tests.engine.test_engine_dispute import vanishing

pytestmark = pytest.mark.integration
NATIVE = "0x" + "00" * 20


async def held(party: Party, channel: bytes) -> int:
    snapshot = await party.engine.channel_snapshot(channel)
    return snapshot.holding(NATIVE) if snapshot is not None else 0


def deposits(log: EventLog) -> list[bytes]:
    return [
        r.submitted_transaction.tx_hash
        for r in log.read()
        if r.WhichOneof("payload") == "submitted_transaction"
        and r.submitted_transaction.tx_kind == log_pb2.TRANSACTION_KIND_DEPOSIT
        and not r.submitted_transaction.failed
        and not r.submitted_transaction.mined
    ]


def reverts(log: EventLog) -> list[int]:
    return [
        r.chain_event.blocks_reverted.first_block
        for r in log.read()
        if r.WhichOneof("payload") == "chain_event"
        and r.chain_event.WhichOneof("event") == "blocks_reverted"
    ]


async def test_an_orphaned_deposit_is_undone_and_waited_for(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice = setting.party("alice", ALICE, 1)
    # Bob watches no chain at first: he cannot deposit his share while the reorg happens.
    bob = setting.party("bob", BOB, 2, with_chain=False)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice)
            async with vanishing(nursery, bob) as first_bob:
                before_deposit = chain_snapshot.rpc("snapshot", "evm_snapshot")
                fund_id = await alice.engine.create_ledger_channel(
                    BOB.address, 10, counterparty_amount=5, challenge_duration=60
                )
                ledger = fund_id.channel_id
                await eventually(lambda: _held_is(alice, ledger, 10))
                (tx_hash,) = deposits(alice.log)
                raw = chain_snapshot.w3.eth.get_raw_transaction(tx_hash)
                first_bob.cancel()
            bob.close()

            # The blocks from Alice's deposit on are replaced by empty ones.
            assert chain_snapshot.rpc("revert", "evm_revert", before_deposit) is True
            for _ in range(3):
                chain_snapshot.rpc("mine", "evm_mine")
            await eventually(lambda: _held_is(alice, ledger, 0))
            entry = await alice.engine.objective(fund_id)
            assert entry["status"] == "RUNNING"
            assert entry["waiting_for"] == "COMPLETE_FUNDING"
            assert chain_snapshot.holdings(NATIVE, ledger) == 0
            await trio.sleep(0.5)  # time to deposit again, which it must not do
            assert len(deposits(alice.log)) == 1

            # The same transaction is mined again: the canonical deposit.
            chain_snapshot.w3.eth.send_raw_transaction(raw)
            await eventually(lambda: _held_is(alice, ledger, 10))
            # Bob comes back with a chain: he sees Alice's deposit, adds his, both finish.
            bob = setting.party("bob", BOB, 2)
            await start_parties(nursery, bob)
            for party in (alice, bob):
                assert (await party.engine.wait_objective(fund_id)).done
            assert chain_snapshot.holdings(NATIVE, ledger) == 15
            assert len(deposits(alice.log)) == 1
            nursery.cancel_scope.cancel()
    assert reverts(alice.log)
    for party in (alice, bob):
        assert party.log.verify().ok
        party.close()


async def _held_is(party: Party, channel: bytes, amount: int) -> bool:
    return await held(party, channel) == amount
