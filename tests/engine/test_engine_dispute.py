"""A party disappears and the others settle on chain: the payee with its last voucher
through the VirtualPaymentApp, then the ledgers through their guarantees."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

from node.chain import ChainClient
from node.core import Guarantee, SignedState, Signer, address_to_destination, signed_state_to_proto
from node.engine import CommandRefusedError, Refusal, settlement_json
from node.proto import log_pb2, wire_pb2
from node.protocols import (
    Add,
    ObjectiveId,
    ObjectiveKind,
    ProposeLedgerUpdate,
    SignLedgerProposal,
    final_state_for,
)
from tests.actors import ALICE, BOB, IRENE
from tests.engine.engine_support import (
    NATIVE,
    Party,
    Setting,
    eventually,
    open_ledger,
    start_parties,
    until,
)
from tests.engine.test_engine_hostile import inject

if TYPE_CHECKING:
    from trio_typing import TaskStatus

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CHALLENGE_S = 30  # the payment channel's
LEDGER_CHALLENGE_S = 60  # open_ledger's


@asynccontextmanager
async def vanishing(nursery: trio.Nursery, party: Party) -> AsyncIterator[trio.CancelScope]:
    """Run ``party`` in a scope of its own: cancelling it makes the party vanish."""
    scope = trio.CancelScope()

    async def run(*, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with trio.open_nursery() as inner:
                await start_parties(inner, party)
                task_status.started()

    await nursery.start(run)
    yield scope


async def open_and_pay(
    alice: Party, bob: Party, path: list[str], funds: int = 4, payments: int = 3
) -> bytes:
    """Alice opens a payment channel of ``funds`` to Bob and pays 1 ``payments`` times."""
    fund_id = await alice.engine.create_payment_channel(
        BOB.address, path, funds, challenge_duration=CHALLENGE_S
    )
    channel = fund_id.channel_id
    assert (await bob.engine.wait_objective(fund_id)).done
    await until(
        lambda: alice.engine.payment_channel(channel), lambda value: value["status"] == "OPEN"
    )
    for _ in range(payments):
        await alice.engine.pay(channel, 1)
    await until(
        lambda: bob.engine.payment_channel(channel),
        lambda value: value["received"] == str(payments),
    )
    return channel


async def pay_and_vanish(
    alice: Party, bob: Party, scope: trio.CancelScope, path: list[str]
) -> bytes:
    """Alice opens a payment channel of 4 to Bob, pays 1 three times, and vanishes."""
    channel = await open_and_pay(alice, bob, path)
    scope.cancel()
    return channel


def skip_time(chain: ChainClient, seconds: int) -> None:
    chain.rpc("time", "evm_increaseTime", seconds)
    chain.rpc("mine", "evm_mine")


def settlement_kinds(party: Party) -> list[str]:
    """The transactions the party logged for settlements, by kind name."""
    return [
        log_pb2.TransactionKind.Name(r.submitted_transaction.tx_kind).removeprefix(
            "TRANSACTION_KIND_"
        )
        for r in party.log.read()
        if r.WhichOneof("payload") == "submitted_transaction"
        and r.submitted_transaction.objective_id.startswith(ObjectiveKind.SETTLE.value)
        and not r.submitted_transaction.failed
        and not r.submitted_transaction.mined
    ]


async def settlement(party: Party, objective_id: ObjectiveId) -> dict[str, object]:
    """Where the party's settlement stands, as the API answers it."""
    return settlement_json(await party.engine.objective(objective_id))


async def settled_after_the_challenges(
    party: Party,
    channel: bytes,
    chain: ChainClient,
    submitted: list[str],
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> tuple[object, object]:
    """Start the settlement; once its challenges are registered, let them finalize; the
    objective then reclaims and pays out by itself. Returns (paid, payout)."""
    objective_id = await party.engine.settle_payment_channel(channel)
    challenged = await until(
        lambda: settlement(party, objective_id), lambda value: value["stage"] == "CHALLENGED"
    )
    assert sorted(str(s).split(":")[0] for s in challenged["submitted"]) == submitted  # type: ignore[attr-defined]
    assert challenged["payout"] is None  # the ledger has not finalized
    if meanwhile is not None:
        await meanwhile()
    await trio.to_thread.run_sync(skip_time, chain, LEDGER_CHALLENGE_S + 1)
    entry = await party.engine.wait_objective(objective_id)
    assert entry.done, entry.failure
    settled = await settlement(party, objective_id)
    assert settled["stage"] == "SETTLED"
    return settled["paid"], settled["payout"]


async def test_payee_and_intermediary_settle_with_the_last_voucher(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice, irene, bob = setting.path()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with vanishing(nursery, alice) as alice_scope:
                await start_parties(nursery, irene, bob)
                left = await open_ledger(alice, irene, 10)
                right = await open_ledger(irene, bob, 10, counterparty_amount=5)
                channel = await pay_and_vanish(alice, bob, alice_scope, [IRENE.address])

            # Bob: his redemption state on V, his ledger with Irene; 5 of his own + 3 paid.
            # Once the challenge is on chain, neither engine changes the ledger any more.
            async def newer_ledger_state() -> None:
                for party in (irene, bob):
                    await eventually(lambda p=party: bool(settled_challenges(p, right)))  # type: ignore[misc]
                add = Add(Guarantee(b"\x05" * 32, 1, *destinations(IRENE, BOB)), 1)
                with pytest.raises(CommandRefusedError):
                    await bob.engine.update_ledger(SignLedgerProposal(right, add))
                with pytest.raises(CommandRefusedError):
                    await irene.engine.update_ledger(ProposeLedgerUpdate(right, add))
                assert await supported_turn(bob, right) == 2

            paid, payout = await settled_after_the_challenges(
                bob, channel, chain_snapshot, ["CHALLENGE", "CHALLENGE"], newer_ledger_state
            )
            assert (paid, payout) == ("3", "8")
            assert chain_snapshot.balance(BOB.address) == 8
            assert await bob.engine.chain.holdings(NATIVE, right) == 0  # type: ignore[union-attr]
            # Irene answered V's challenge by herself: she settles both her ledgers.
            irene_left = ObjectiveId(ObjectiveKind.SETTLE, left)
            irene_right = ObjectiveId(ObjectiveKind.SETTLE, right)
            await until(
                lambda: settlement(irene, irene_left), lambda value: value["stage"] != "CHALLENGING"
            )
            await trio.to_thread.run_sync(skip_time, chain_snapshot, LEDGER_CHALLENGE_S + 1)
            for objective_id in (irene_left, irene_right):
                entry = await irene.engine.wait_objective(objective_id)
                assert entry.done, entry.failure
            assert (await settlement(irene, irene_left))["payout"] == "3"
            nursery.cancel_scope.cancel()
    assert chain_snapshot.balance(IRENE.address) == 10  # 7 from Bob's ledger, 3 from Alice's
    assert chain_snapshot.balance(ALICE.address) == 7
    assert await_holdings_zero(chain_snapshot, left)
    # Bob challenges V and his ledger; Irene settles that ledger too, so which of the two
    # reclaims V and pays the ledger out is a race: each is done once, the balances agree.
    bobs = settlement_kinds(bob)
    assert bobs[:2] == ["CHALLENGE", "CHALLENGE"]
    assert sorted(bobs[2:]) in ([], ["RECLAIM"], ["TRANSFER"], ["RECLAIM", "TRANSFER"])
    assert settlement_kinds(irene)[0] == "CHALLENGE"  # her ledger with Alice
    for party in (alice, irene, bob):
        assert party.log.verify().ok
        party.close()


def destinations(*signers: Signer) -> list[bytes]:
    return [address_to_destination(signer.address) for signer in signers]


async def supported_turn(party: Party, channel: bytes) -> int | None:
    snapshot = await party.engine.channel_snapshot(channel)
    return snapshot.supported.state.turn_num if snapshot and snapshot.supported else None


def settled_challenges(party: Party, channel: bytes) -> list[log_pb2.ChallengeRegistered]:
    return [
        r.chain_event.challenge_registered
        for r in party.log.read()
        if r.WhichOneof("payload") == "chain_event"
        and r.chain_event.WhichOneof("event") == "challenge_registered"
        and r.chain_event.challenge_registered.channel_id == channel
    ]


def await_holdings_zero(chain: ChainClient, channel: bytes) -> bool:
    return chain.holdings(NATIVE, channel) == 0


async def test_payee_restarted_mid_settlement_finishes_two_direct_payment_channels(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice, bob = setting.pair()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with vanishing(nursery, alice) as alice_scope:
                await start_parties(nursery, bob)
                ledger = await open_ledger(alice, bob, 10, counterparty_amount=2)
                # Two channels over one ledger: it pays out once neither is guaranteed.
                await open_and_pay(alice, bob, [], funds=2, payments=1)
                channel = await pay_and_vanish(alice, bob, alice_scope, [])
            objective_id = await bob.engine.settle_payment_channel(channel)
            first = await until(
                lambda: settlement(bob, objective_id),
                lambda value: value["stage"] == "CHALLENGED",
            )
            assert first["ledger_id"] == "0x" + ledger.hex()
            assert len(first["submitted"]) == 3  # type: ignore[arg-type]
            assert int(str(first["finalizes_at"])) > 0
            nursery.cancel_scope.cancel()
    bob.close()
    # Bob restarts before the challenges finalize: the objective comes back from his log,
    # and what is on chain is not sent again.
    bob = setting.party("bob", BOB, 2)
    assert bob.engine.state.objectives[objective_id].running
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, bob)
            nursery.start_soon(skip_after_a_moment, chain_snapshot)
            assert (await bob.engine.wait_objective(objective_id)).done
            settled = await settlement(bob, objective_id)
            nursery.cancel_scope.cancel()
    # Bob: 2 of his own, 3 paid on one channel and 1 on the other.
    assert (settled["stage"], settled["paid"], settled["payout"]) == ("SETTLED", "3", "6")
    assert chain_snapshot.balance(BOB.address) == 6
    assert chain_snapshot.balance(ALICE.address) == 6
    assert chain_snapshot.holdings(NATIVE, ledger) == 0
    kinds = ["CHALLENGE"] * 3 + ["RECLAIM", "RECLAIM", "TRANSFER"]
    assert settlement_kinds(bob) == kinds
    redemptions = [
        r.accepted_state.signed_state.state.turn_num
        for r in bob.log.read()
        if r.WhichOneof("payload") == "accepted_state" and r.accepted_state.channel_id == channel
    ]
    assert redemptions.count(2) == 1  # our signature on it, logged once before it left
    for party in (alice, bob):
        assert party.log.verify().ok
        party.close()


async def test_a_final_state_everyone_signed_is_concluded_then_reclaimed(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice, bob = setting.pair()
    network = alice.transport._network
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            async with vanishing(nursery, alice) as alice_scope:
                await start_parties(nursery, bob)
                ledger = await open_ledger(alice, bob, 10, counterparty_amount=2)
                channel = await pay_and_vanish(alice, bob, alice_scope, [])
            # Alice's close reached Bob, who signed it; then she vanished before the
            # ledger could release the guarantee (she leads it).
            snapshot = await bob.engine.channel_snapshot(channel)
            assert snapshot is not None
            final = final_state_for(snapshot, 3)
            close = wire_pb2.Payload(
                objective_id=str(ObjectiveId(ObjectiveKind.VIRTUAL_DEFUND, channel)),
                signed_state=signed_state_to_proto(
                    SignedState(final, {0: ALICE.sign_state(final)})
                ),
            )
            await inject(network, ALICE, bob, close)
            await until(lambda: supported_is_final(bob, channel), lambda value: value)
            paid, payout = await settled_after_the_challenges(
                bob, channel, chain_snapshot, ["CHALLENGE", "CONCLUDE"]
            )
            nursery.cancel_scope.cancel()
    assert (paid, payout) == ("3", "5")
    assert chain_snapshot.balance(BOB.address) == 5
    assert chain_snapshot.balance(ALICE.address) == 7
    assert chain_snapshot.holdings(NATIVE, ledger) == 0
    assert sorted(settlement_kinds(bob)[:2]) == ["CHALLENGE", "CONCLUDE"]
    assert settlement_kinds(bob)[2:] == ["RECLAIM", "TRANSFER"]
    for party in (alice, bob):
        assert party.log.verify().ok
        party.close()


async def supported_is_final(party: Party, channel: bytes) -> bool:
    snapshot = await party.engine.channel_snapshot(channel)
    return bool(snapshot and snapshot.supported and snapshot.supported.state.is_final)


async def skip_after_a_moment(chain: ChainClient) -> None:
    await trio.sleep(0.3)
    await trio.to_thread.run_sync(skip_time, chain, LEDGER_CHALLENGE_S + 1)


async def refused(
    party: Party, channel: bytes, refusal: Refusal, words: str, ledger_id: bytes | None = None
) -> None:
    with pytest.raises(CommandRefusedError, match=words) as caught:
        await party.engine.settle_payment_channel(channel, ledger_id)
    assert caught.value.refusal is refusal


async def test_what_cannot_be_settled_is_refused(setting: Setting) -> None:
    alice, bob = setting.pair()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice)
            async with vanishing(nursery, bob) as bob_scope:
                ledger = await open_ledger(alice, bob, 10)
                fund_id = await alice.engine.create_payment_channel(BOB.address, [], 4)
                channel = fund_id.channel_id
                assert (await bob.engine.wait_objective(fund_id)).done
                await alice.engine.pay(channel, 2)
                await until(
                    lambda: bob.engine.payment_channel(channel),
                    lambda value: value["received"] == "2",
                )
                await refused(bob, b"\x07" * 32, Refusal.NOT_FOUND, "no payment channel")
                await refused(bob, ledger, Refusal.NOT_FOUND, "no payment channel")
                other = b"\x09" * 32
                await refused(bob, channel, Refusal.CONFLICT, "not our ledger", ledger_id=other)
                defund_id = await alice.engine.close_payment_channel(channel)
                assert (await bob.engine.wait_objective(defund_id)).done
                # Closed together: the ledger released the guarantee, nothing is left to do.
                await refused(
                    bob, channel, Refusal.CONFLICT, "nothing to enforce, no supported ledger"
                )
                bob_scope.cancel()
            # Bob is gone before he saw it: Alice's new channel never got its postfund.
            fund_id = await alice.engine.create_payment_channel(BOB.address, [], 4)
            await until(
                lambda: alice.engine.channel_snapshot(fund_id.channel_id),
                lambda value: value is not None,
            )
            await refused(
                alice, fund_id.channel_id, Refusal.CONFLICT, "nothing to enforce, no state"
            )
            nursery.cancel_scope.cancel()
    assert settlement_kinds(alice) == settlement_kinds(bob) == []
    for party in (alice, bob):
        party.close()


async def test_a_challenged_channel_takes_no_more_payments(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await open_ledger(alice, irene, 10)
            await open_ledger(irene, bob, 10)
            channel = await open_and_pay(alice, bob, [IRENE.address])
            voucher = alice.engine.signer.voucher(channel, 4)
            await bob.engine.settle_payment_channel(channel)
            for party in parties:
                await eventually(lambda p=party: bool(settled_challenges(p, channel)))  # type: ignore[misc]
            with pytest.raises(CommandRefusedError, match="not open"):
                await alice.engine.pay(channel, 1)
            with pytest.raises(CommandRefusedError, match="not open"):
                await bob.engine.receive_voucher(voucher)
            assert (await bob.engine.payment_channel(channel))["received"] == "3"
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()
