"""A watchtower answers stale challenges of its clients' channels while they are away:
engines on a memory network, a real chain (anvil), real logs and module."""

from __future__ import annotations

import pytest
import trio

from node.chain import ChainClient, ChainService
from node.core import SignedState, Signer, signed_state_to_proto
from node.engine import CommandRefusedError
from node.proto import log_pb2, wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind, WatchRequest
from node.testing import supported_states_in
from tests.actors import ALICE, BOB, IRENE, IVAN, dev_key
from tests.engine.engine_support import (
    Party,
    Setting,
    eventually,
    open_ledger,
    start_parties,
)
from tests.engine.test_engine_dispute import open_and_pay, vanishing
from tests.engine.test_engine_hostile import inject

pytestmark = pytest.mark.integration
TOWER_CHAIN_INDEX = 4


def signed_at(party: Party, channel: bytes, turn: int) -> SignedState:
    """The state of ``channel`` at ``turn`` every participant signed, from the party's log."""
    (found,) = [s for s in supported_states_in(party.log, channel) if s.state.turn_num == turn]
    return found


def tower_kinds(tower: Party) -> list[str]:
    """The transactions the tower's guards sent, by kind name."""
    return [
        log_pb2.TransactionKind.Name(r.submitted_transaction.tx_kind).removeprefix(
            "TRANSACTION_KIND_"
        )
        for r in tower.log.read()
        if r.WhichOneof("payload") == "submitted_transaction"
        and r.submitted_transaction.objective_id.startswith(ObjectiveKind.GUARD.value)
        and not r.submitted_transaction.failed
        and not r.submitted_transaction.mined
    ]


def rejections(party: Party) -> list[str]:
    return [r.rejected.reason for r in party.log.read() if r.WhichOneof("payload") == "rejected"]


async def supported_turn(party: Party, channel: bytes) -> int:
    snapshot = await party.engine.channel_snapshot(channel)
    assert snapshot is not None
    assert snapshot.supported is not None
    return snapshot.supported.state.turn_num


def held_turn(tower: Party, channel: bytes, client: str) -> int | None:
    watched = tower.engine.state.watched.get(channel)
    request = watched.request_of(client) if watched is not None else None
    return request.supported.state.turn_num if request is not None else None


async def cheat(setting: Setting, chain_index: int, stale: SignedState, cheater: Signer) -> None:
    """A participant's own challenge with an old state it signed (a theft attempt)."""
    client = ChainClient(setting.rpc_url, dev_key(chain_index), setting.deployment.adjudicator)
    await ChainService(client).challenge(stale, cheater.sign_challenge(stale.state))


async def test_a_tower_checkpoints_a_stale_ledger_challenge_while_its_client_is_away(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice, bob = setting.pair()
    tower = setting.party("tower", IVAN, TOWER_CHAIN_INDEX, watchtower=True)
    tower_key = ChainClient(setting.rpc_url, dev_key(TOWER_CHAIN_INDEX)).address
    alice_key = ChainClient(setting.rpc_url, dev_key(1)).address
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            async with (
                vanishing(nursery, tower) as first_run,
                vanishing(nursery, alice) as away,
                vanishing(nursery, bob) as gone,
            ):
                assert await alice.engine.add_watchtower(IVAN.address) is True
                assert await alice.engine.add_watchtower(IVAN.address) is False
                with pytest.raises(CommandRefusedError, match="its own watchtower"):
                    await alice.engine.add_watchtower(ALICE.address)
                ledger = await open_ledger(alice, bob, 10, counterparty_amount=5)
                # The ledger moves on: a payment channel over it pays Bob 3 and closes.
                channel = await open_and_pay(alice, bob, [])
                close_id = await alice.engine.close_payment_channel(channel)
                for party in (alice, bob):
                    assert (await party.engine.wait_objective(close_id)).done
                latest = await supported_turn(alice, ledger)
                assert latest > 1
                await eventually(lambda: held_turn(tower, ledger, ALICE.address) == latest)
                away.cancel()
                gone.cancel()
                first_run.cancel()
            # The tower restarts from its log: it still holds what Alice handed over.
            tower.close()
            tower = setting.party("tower", IVAN, TOWER_CHAIN_INDEX, watchtower=True)
            assert held_turn(tower, ledger, ALICE.address) == latest
            await start_parties(nursery, tower)

            # Bob, his node stopped, challenges with the postfund (Alice 10, Bob 5).
            postfund = signed_at(bob, ledger, 1)
            alice_balance = chain_snapshot.balance(alice_key)
            tower_balance = chain_snapshot.balance(tower_key)
            await cheat(setting, 2, postfund, BOB)
            guard_id = ObjectiveId(ObjectiveKind.GUARD, ledger)
            entry = await tower.engine.wait_objective(guard_id)
            assert entry.done, entry.failure
            status = chain_snapshot.status(ledger)
            assert (status.turn_num_record, status.finalizes_at) == (latest, 0)
            assert chain_snapshot.balance(alice_key) == alice_balance  # not a wei of hers
            assert chain_snapshot.balance(tower_key) < tower_balance  # the tower's gas
            info = await tower.engine.watchtower_info()
            assert info["serving"] is True
            assert (info["clients"], info["channels_watched"], info["challenged"]) == (1, 1, [])
            nursery.cancel_scope.cancel()
    assert tower_kinds(tower) == ["CHECKPOINT"]
    for party in (alice, bob, tower):
        assert party.log.verify().ok
        party.close()


async def test_a_tower_answers_a_postfund_challenge_with_the_payees_last_voucher(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice, bob = setting.pair()
    tower = setting.party("tower", IVAN, TOWER_CHAIN_INDEX, watchtower=True)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, tower)
            async with vanishing(nursery, alice) as away, vanishing(nursery, bob) as gone:
                assert await bob.engine.add_watchtower(IVAN.address) is True
                await open_ledger(alice, bob, 10, counterparty_amount=5)
                channel = await open_and_pay(alice, bob, [])

                def holds_the_last_voucher() -> bool:
                    watched = tower.engine.state.watched.get(channel)
                    request = watched.request_of(BOB.address) if watched else None
                    if request is None or request.counter is None:
                        return False
                    return request.counter.candidate.state.outcome[0].allocations[1].amount == 3

                await eventually(holds_the_last_voucher)
                away.cancel()
                gone.cancel()

            # Alice, her node stopped, challenges with the postfund: no voucher counts.
            postfund = signed_at(alice, channel, 1)
            await cheat(setting, 1, postfund, ALICE)
            entry = await tower.engine.wait_objective(ObjectiveId(ObjectiveKind.GUARD, channel))
            assert entry.done, entry.failure
            status = chain_snapshot.status(channel)
            assert status.turn_num_record == 2  # Bob's redemption state, registered
            assert status.finalizes_at > 0
            nursery.cancel_scope.cancel()
    assert tower_kinds(tower) == ["CHALLENGE"]
    for party in (alice, bob, tower):
        assert party.log.verify().ok
        party.close()


async def test_what_a_tower_cannot_use_is_refused_and_nothing_is_kept(
    setting: Setting, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = setting.pair()
    tower = setting.party("tower", IVAN, TOWER_CHAIN_INDEX, watchtower=True)
    monkeypatch.setattr("node.core.constants.watchtower_channels_per_client_max", 1)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob, tower)
            # Bob is no watchtower: Alice's hand-over is refused.
            assert await alice.engine.add_watchtower(BOB.address) is True
            first = await open_ledger(alice, bob, 10)
            await eventually(lambda: any("not a watchtower" in r for r in rejections(bob)))
            supported = signed_at(alice, first, 1)
            # A request signed by nobody in the channel, and one for someone else.
            state = supported.state
            forged = SignedState(state, {0: IRENE.sign_state(state), 1: BOB.sign_state(state)})
            for sender, request in (
                (ALICE, WatchRequest(forged)),
                (IRENE, WatchRequest(supported)),
            ):
                payload = wire_pb2.Payload()
                payload.watch_request.supported.CopyFrom(signed_state_to_proto(request.supported))
                await inject(setting.network, sender, tower, payload)
            await eventually(lambda: len(rejections(tower)) >= 2)
            assert tower.engine.state.watched == {}
            # One channel per client at most (the bound, made small): the second is refused.
            assert await alice.engine.add_watchtower(IVAN.address) is True
            await eventually(lambda: held_turn(tower, first, ALICE.address) == 1)
            await open_ledger(alice, bob, 10)
            await eventually(lambda: any("channels of" in r for r in rejections(tower)))
            assert len(tower.engine.state.watched) == 1
            nursery.cancel_scope.cancel()
    reasons = rejections(tower)
    assert any("BAD_SIGNATURE" in r for r in reasons), reasons
    assert any("NOT_A_PARTICIPANT" in r for r in reasons), reasons
    for party in (alice, bob, tower):
        assert party.log.verify().ok
        party.close()
