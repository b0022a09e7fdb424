"""A transaction sent just before the node stopped: after the restart the node asks the
chain what became of it. Mined meanwhile: logged as mined, not sent again. Dropped from
the mempool: logged as refused, and the objective sends it again. Anvil with automine
off plays the chain that has not mined it yet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from node.chain import ChainClient
from node.proto import log_pb2
from tests.actors import ALICE, BOB
from tests.engine.engine_support import NATIVE, Party, Setting, eventually, start_parties
from tests.engine.test_engine_dispute import vanishing

pytestmark = pytest.mark.integration


@pytest.fixture
def manual_mining(chain_snapshot: ChainClient) -> Iterator[ChainClient]:
    chain_snapshot.rpc("automine", "evm_setAutomine", False)
    yield chain_snapshot
    chain_snapshot.rpc("automine", "evm_setAutomine", True)


def deposits(party: Party) -> list[tuple[bytes, str]]:
    """Alice's deposit records: (hash, "sent" | "mined" | "refused")."""
    found = []
    for record in party.log.read():
        tx = record.submitted_transaction
        if record.WhichOneof("payload") != "submitted_transaction":
            continue
        if tx.tx_kind != log_pb2.TRANSACTION_KIND_DEPOSIT:
            continue
        found.append((tx.tx_hash, "refused" if tx.failed else "mined" if tx.mined else "sent"))
    return found


async def sent_then_stopped(setting: Setting, nursery: trio.Nursery) -> tuple[bytes, bytes]:
    """Alice opens a ledger with Bob (she deposits 10, he nothing) and stops right after
    her deposit is sent, before any block mines it. Returns the ledger's id and the
    deposit's hash."""
    alice = setting.party("alice", ALICE, 1)
    bob = setting.party("bob", BOB, 2)
    await start_parties(nursery, bob)
    async with vanishing(nursery, alice) as away:
        fund_id = await alice.engine.create_ledger_channel(BOB.address, 10, challenge_duration=60)
        await eventually(lambda: [s for _, s in deposits(alice)] == ["sent"])
        away.cancel()
    ((sent, _),) = deposits(alice)
    alice.close()
    return fund_id.channel_id, sent


async def test_a_deposit_mined_while_the_node_was_down_is_not_sent_again(
    setting: Setting, manual_mining: ChainClient
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            ledger, _ = await sent_then_stopped(setting, nursery)
            manual_mining.rpc("mine", "evm_mine")
            manual_mining.rpc("automine", "evm_setAutomine", True)
            alice = setting.party("alice", ALICE, 1)
            await start_parties(nursery, alice)
            fund_id = next(iter(alice.engine.state.running))
            assert fund_id.channel_id == ledger
            assert (await alice.engine.wait_objective(fund_id)).done
            nursery.cancel_scope.cancel()
    (first, _), (again, state) = deposits(alice)
    assert (again, state) == (first, "mined")
    assert len(deposits(alice)) == 2
    assert manual_mining.holdings(NATIVE, ledger) == 10
    assert alice.log.verify().ok


async def test_a_deposit_dropped_while_the_node_was_down_is_sent_again(
    setting: Setting, manual_mining: ChainClient
) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            ledger, dropped = await sent_then_stopped(setting, nursery)
            manual_mining.rpc("drop", "anvil_dropTransaction", "0x" + dropped.hex())
            manual_mining.rpc("automine", "evm_setAutomine", True)
            alice = setting.party("alice", ALICE, 1)
            await start_parties(nursery, alice)
            fund_id = next(iter(alice.engine.state.running))
            assert (await alice.engine.wait_objective(fund_id)).done
            nursery.cancel_scope.cancel()
    records = deposits(alice)
    assert records[:2] == [(dropped, "sent"), (b"", "refused")]
    # Sent again (the same signed transaction if nothing else used the nonce), mined.
    assert [state for _, state in records[2:]] == ["sent", "mined"]
    assert manual_mining.holdings(NATIVE, ledger) == 10
    assert alice.log.verify().ok
