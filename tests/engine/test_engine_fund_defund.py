"""Two engines in one process: DirectFund then DirectDefund on a real anvil."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from node.chain import TEST_TOKEN, ChainClient, load_artifact
from node.proto import log_pb2, wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind
from tests.actors import ALICE, BOB, dev_key
from tests.engine.engine_support import NATIVE, Setting, open_ledger, start_parties
from tests.engine.test_engine_hostile import inject

pytestmark = [pytest.mark.slow, pytest.mark.integration]


async def test_fund_then_defund(setting: Setting, chain_snapshot: ChainClient) -> None:
    alice, bob = setting.pair()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            fund_id = await alice.engine.create_ledger_channel(
                BOB.address, 5, counterparty_amount=3, challenge_duration=60
            )
            assert fund_id.kind is ObjectiveKind.DIRECT_FUND
            entries = [await p.engine.wait_objective(fund_id) for p in (alice, bob)]
            assert [entry.done for entry in entries] == [True, True]
            channel = fund_id.channel_id
            views = [await p.engine.ledger_channel(channel) for p in (alice, bob)]
            assert [view["status"] for view in views] == ["OPEN", "OPEN"]
            assert views[0]["holdings"] == [{"asset": NATIVE, "amount": "8"}]
            assert views[0]["balances"] == [{"asset": NATIVE, "me": "5", "them": "3"}]
            assert views[1]["balances"] == [{"asset": NATIVE, "me": "3", "them": "5"}]
            assert chain_snapshot.holdings(NATIVE, channel) == 8

            defund_id = await bob.engine.close_ledger_channel(channel)
            assert defund_id == ObjectiveId(ObjectiveKind.DIRECT_DEFUND, channel)
            for party in (alice, bob):
                assert (await party.engine.wait_objective(defund_id)).done
            nursery.cancel_scope.cancel()
    assert chain_snapshot.holdings(NATIVE, channel) == 0
    assert chain_snapshot.balance(ALICE.address) == 5
    assert chain_snapshot.balance(BOB.address) == 3
    for party in (alice, bob):
        assert (await party.engine.ledger_channel(channel))["status"] == "DEFUNDED"
        names = [name for name, _ in party.notifications]
        assert names.count("objective_completed") == 2
        assert "ledger_channel_updated" in names
        assert party.log.verify().ok
        party.close()


async def test_token_channel_approves_then_deposits(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    assert setting.deployment.token is not None
    token = chain_snapshot.contract(load_artifact(TEST_TOKEN), setting.deployment.token)
    for index in (1, 2):
        payer = ChainClient(setting.rpc_url, dev_key(index)).address
        chain_snapshot.transact("fund", token.functions.transfer(payer, 100))
    alice, bob = setting.pair()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            fund_id = await alice.engine.create_ledger_channel(
                BOB.address,
                40,
                counterparty_amount=60,
                asset=setting.deployment.token,
                challenge_duration=60,
            )
            for party in (alice, bob):
                assert (await party.engine.wait_objective(fund_id)).done
            defund_id = await alice.engine.close_ledger_channel(fund_id.channel_id)
            for party in (alice, bob):
                assert (await party.engine.wait_objective(defund_id)).done
            nursery.cancel_scope.cancel()
    balance = token.functions.balanceOf
    assert chain_snapshot.call("balance", balance(ALICE.address)) == 40
    assert chain_snapshot.call("balance", balance(BOB.address)) == 60
    approvals = [
        r.submitted_transaction
        for r in alice.log.read()
        if r.WhichOneof("payload") == "submitted_transaction"
        and r.submitted_transaction.tx_kind == log_pb2.TRANSACTION_KIND_APPROVE
    ]
    assert len(approvals) == 1
    for party in (alice, bob):
        party.close()


async def test_a_refused_proposal_fails_the_objective_on_both_sides(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice, bob = setting.party("alice", ALICE, 1), setting.party("bob", BOB, 2, deposit_max=2)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            fund_id = await alice.engine.create_ledger_channel(
                BOB.address, 1, counterparty_amount=3, challenge_duration=60
            )
            entry = await alice.engine.wait_objective(fund_id)
            nursery.cancel_scope.cancel()
    assert entry.failure is not None
    assert "deposit of 3" in entry.failure
    assert "exceeds the limit 2" in entry.failure
    assert fund_id not in bob.engine.state.objectives
    assert [name for name, _ in alice.notifications][-1] == "objective_failed"
    assert chain_snapshot.holdings(NATIVE, fund_id.channel_id) == 0
    alice.close()
    bob.close()

    # The refusal is in Alice's log: a restart does not revive the objective.
    alice = setting.party("alice", ALICE, 1)
    assert alice.engine.state.objectives[fund_id].failure == entry.failure
    alice.close()


async def test_a_signature_logged_but_never_sent_is_sent_after_a_restart(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    """A crash between logging our prefund and handing it to the transport loses the
    message; the restarted engine sends its latest state of each running objective."""
    network = setting.network
    alice, bob = setting.party("alice", ALICE, 1), setting.party("bob", BOB, 2)
    network.dropped.add((ALICE.address, BOB.address))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            fund_id = await alice.engine.create_ledger_channel(
                BOB.address, 2, counterparty_amount=1, challenge_duration=60
            )
            await trio.testing.wait_all_tasks_blocked()
            assert fund_id not in bob.engine.state.objectives
            nursery.cancel_scope.cancel()
    alice.close()
    network.dropped.clear()
    alice = setting.party("alice", ALICE, 1)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            for party in (alice, bob):
                assert (await party.engine.wait_objective(fund_id)).done
            nursery.cancel_scope.cancel()
    assert chain_snapshot.holdings(NATIVE, fund_id.channel_id) == 3
    alice.close()
    bob.close()


async def test_concurrent_channels_fund_and_close_together(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    """Several objectives at once share batches, the chain key's nonces and the watcher."""
    alice, bob = setting.pair()
    channels = 6
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            ids = []

            async def open_one(index: int) -> None:
                ids.append(
                    await alice.engine.create_ledger_channel(
                        BOB.address, 10 + index, counterparty_amount=index, challenge_duration=60
                    )
                )

            async with trio.open_nursery() as openers:
                for index in range(channels):
                    openers.start_soon(open_one, index)
            for objective_id in ids:
                for party in (alice, bob):
                    assert (await party.engine.wait_objective(objective_id)).done
            closes = [await bob.engine.close_ledger_channel(oid.channel_id) for oid in ids]
            for objective_id in closes:
                for party in (alice, bob):
                    assert (await party.engine.wait_objective(objective_id)).done
            nursery.cancel_scope.cancel()
    assert chain_snapshot.balance(ALICE.address) == sum(10 + i for i in range(channels))
    assert chain_snapshot.balance(BOB.address) == sum(range(channels))
    for objective_id in ids:
        assert chain_snapshot.holdings(NATIVE, objective_id.channel_id) == 0
    assert len(await alice.engine.ledger_channels()) == channels
    for party in (alice, bob):
        party.close()


async def test_a_state_the_peer_refused_as_early_is_offered_again(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    """A peer may judge our state before it has seen the postfund that travelled with it
    (it says WRONG_TURN); we offer our latest state again a moment later."""
    alice, bob = setting.party("alice", ALICE, 1), setting.party("bob", BOB, 2)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            channel = await open_ledger(alice, bob, 2, 1)
            setting.network.dropped.add((BOB.address, ALICE.address))
            close_id = await bob.engine.close_ledger_channel(channel)
            await trio.testing.wait_all_tasks_blocked()
            assert close_id not in alice.engine.state.objectives  # Bob's final state was lost
            setting.network.dropped.clear()
            refusal = wire_pb2.Payload(objective_id=str(close_id))
            refusal.rejection.reason = wire_pb2.REJECTION_REASON_WRONG_TURN
            refusal.rejection.detail = "still being funded"
            await inject(setting.network, ALICE, bob, refusal)
            for party in (alice, bob):
                assert (await party.engine.wait_objective(close_id)).done
            nursery.cancel_scope.cancel()
    assert chain_snapshot.holdings(NATIVE, channel) == 0
    alice.close()
    bob.close()
