"""Virtual channels over paths of every length, found routes, out-of-band vouchers and the
policy on incoming channels: engines in one process on a real anvil."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from node.core import Voucher, address_to_bytes
from node.engine import CommandRefusedError, Refusal
from node.proto import wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind, ProposeLedgerUpdate
from tests.actors import BOB, IRENE, IVAN
from tests.engine.engine_support import (
    Party,
    Setting,
    allocations,
    eventually,
    handled,
    open_ledger,
    open_virtual_channel,
    quiet,
    start_parties,
    until,
)
from tests.engine.test_engine_hostile import inject

pytestmark = [pytest.mark.slow, pytest.mark.integration]


async def _close(parties: tuple[Party, ...], channel: bytes) -> None:
    defund_id = await parties[0].engine.close_payment_channel(channel)
    for party in parties:
        entry = await party.engine.wait_objective(defund_id)
        assert entry.done, entry.failure


async def _received(party: Party, channel: bytes) -> int:
    return int(str((await party.engine.payment_channel(channel))["received"]))


async def test_zero_intermediaries_pay_and_close_on_the_shared_ledger(setting: Setting) -> None:
    alice, bob = parties = setting.pair()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            ledger = await open_ledger(alice, bob, 10)
            channel = await open_virtual_channel(alice, bob, [], 4)
            assert (await alice.engine.payment_channel(channel))["intermediaries"] == []
            for party in parties:
                assert await allocations(party, ledger) == [6, 0, 4]
            for _ in range(3):
                await alice.engine.pay(channel, 1)
            await until(lambda: _received(bob, channel), lambda value: value == 3)
            await _close(parties, channel)
            for party in parties:
                await until(lambda p=party: allocations(p, ledger), lambda value: value == [7, 3])  # type: ignore[misc]
            nursery.cancel_scope.cancel()
    for party in parties:
        assert party.log.verify().ok
        party.close()


async def test_two_intermediaries_lock_every_ledger_and_release_it(setting: Setting) -> None:
    alice, irene, bob = setting.path()
    ivan = setting.party("ivan", IVAN, 4)
    parties = (alice, irene, ivan, bob)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            ledgers = [
                await open_ledger(alice, irene, 10),
                await open_ledger(irene, ivan, 10),
                await open_ledger(ivan, bob, 10),
            ]
            channel = await open_virtual_channel(alice, bob, [IRENE.address, IVAN.address], 5)
            hops = list(zip(ledgers, [(alice, irene), (irene, ivan), (ivan, bob)], strict=True))
            for ledger, pair in hops:
                for party in pair:
                    assert await allocations(party, ledger) == [5, 0, 5]
            paid = [await alice.engine.pay(channel, amount) for amount in (1, 2, 1)]
            assert paid == [1, 3, 4]
            await until(lambda: _received(bob, channel), lambda value: value == 4)
            await _close(parties, channel)
            for ledger, pair in hops:
                for party in pair:
                    await until(
                        lambda p=party, c=ledger: allocations(p, c), lambda value: value == [6, 4]
                    )  # type: ignore[misc]
            nursery.cancel_scope.cancel()
    for party in parties:
        assert party.log.verify().ok
        party.close()


def _gossip(*parties: Party) -> None:
    """What gossip would tell each party: every other party's ledger offers."""
    for party in parties:
        others = [p for p in parties if p is not party]
        party.engine.announced = lambda others=others: [  # type: ignore[misc]
            (p.address, p.engine.ledger_offers()) for p in others
        ]


async def test_route_found_from_announced_ledgers(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await open_ledger(alice, irene, 10)
            with pytest.raises(CommandRefusedError, match="no route to") as refused:
                await alice.engine.create_payment_channel(BOB.address, None, 4)
            assert refused.value.refusal is Refusal.CONFLICT
            await open_ledger(irene, bob, 3)
            _gossip(*parties)
            (offer,) = bob.engine.ledger_offers()
            assert offer.counterparty == address_to_bytes(IRENE.address)
            assert int.from_bytes(offer.capacity, "big") == 0
            # Irene can lock only 3 towards Bob: 4 has no route, 3 goes through her.
            with pytest.raises(CommandRefusedError, match="no route"):
                await alice.engine.create_payment_channel(BOB.address, None, 4)
            channel = await open_virtual_channel(alice, bob, None, 3)
            assert (await alice.engine.payment_channel(channel))["intermediaries"] == [
                IRENE.address
            ]
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()


async def test_vouchers_handed_over_out_of_band(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            left = await open_ledger(alice, irene, 10)
            await open_ledger(irene, bob, 10)
            channel = await open_virtual_channel(alice, bob, [IRENE.address], 5)
            listed = await alice.engine.payment_channels_by_ledger(left)
            assert [info["id"] for info in listed] == ["0x" + channel.hex()]
            assert await irene.engine.payment_channels_by_ledger(left) == [
                await irene.engine.payment_channel(channel)
            ]
            with pytest.raises(CommandRefusedError):
                await alice.engine.payment_channels_by_ledger(channel)
            first = await alice.engine.create_voucher(channel, 2)
            assert first.amount == 2
            await quiet()
            assert await _received(bob, channel) == 0  # not sent
            assert await bob.engine.receive_voucher(first) == 2
            with pytest.raises(CommandRefusedError, match="is not above 2"):
                await bob.engine.receive_voucher(first)
            forged = Voucher(channel, 5, IRENE.voucher(channel, 5).signature)
            with pytest.raises(CommandRefusedError):
                await bob.engine.receive_voucher(forged)
            with pytest.raises(CommandRefusedError):
                await irene.engine.receive_voucher(alice.engine.signer.voucher(channel, 3))
            with pytest.raises(CommandRefusedError):
                await bob.engine.receive_voucher(alice.engine.signer.voucher(channel, 6))
            assert await _received(bob, channel) == 2
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()


async def test_a_voucher_refused_as_early_is_sent_again(setting: Setting) -> None:
    """Bob may see Alice's voucher before the channel opens for him (the postfunds travel
    on other connections): Alice offers her latest voucher again when he says so."""
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await open_ledger(alice, irene, 10)
            await open_ledger(irene, bob, 10)
            channel = await open_virtual_channel(alice, bob, [IRENE.address], 5)
            await alice.engine.create_voucher(channel, 1)
            await alice.engine.create_voucher(channel, 2)  # the latest covers both
            refusal = wire_pb2.Payload(
                objective_id=str(ObjectiveId(ObjectiveKind.VIRTUAL_FUND, channel))
            )
            refusal.rejection.reason = wire_pb2.REJECTION_REASON_CHANNEL_NOT_OPEN
            await inject(setting.network, BOB, alice, refusal)
            await until(lambda: _received(bob, channel), lambda value: value == 3)
            # A refusal from someone who is not the payee changes nothing.
            message_id = await inject(setting.network, IRENE, alice, refusal)
            await eventually(lambda: handled(alice, IRENE.address, message_id))
            await quiet()
            assert await _received(bob, channel) == 3
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()


async def test_an_intermediary_refuses_a_channel_beyond_its_limit(setting: Setting) -> None:
    alice, bob = setting.pair()
    irene = setting.party("irene", IRENE, 3, deposit_max=10)
    parties = (alice, irene, bob)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await open_ledger(alice, irene, 20)
            await open_ledger(irene, bob, 10)
            fund_id = await alice.engine.create_payment_channel(BOB.address, [IRENE.address], 11)
            entry = await alice.engine.wait_objective(fund_id)
            assert entry.failure is not None
            assert "exceeds the limit 10" in entry.failure
            channel = await open_virtual_channel(alice, bob, [IRENE.address], 10)
            assert (await alice.engine.payment_channel(channel))["funds"] == "10"
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()


async def test_a_ledger_announced_beyond_its_holdings_is_left_out(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await open_ledger(alice, irene, 100)
            right = await open_ledger(irene, bob, 3)
            _gossip(*parties)
            honest = alice.engine.announced

            def inflated() -> list[tuple[str, list[wire_pb2.LedgerOffer]]]:
                """Irene claims 50 in her ledger with Bob, which holds 3 on chain."""
                assert honest is not None
                told = []
                for node, offers in honest():
                    lies = [wire_pb2.LedgerOffer() for _ in offers]
                    for lie, offer in zip(lies, offers, strict=True):
                        lie.CopyFrom(offer)
                        if node == IRENE.address and offer.channel_id == right:
                            lie.capacity = (50).to_bytes(32, "big")
                    told.append((node, lies))
                return told

            alice.engine.announced = inflated
            with pytest.raises(CommandRefusedError, match="hold what they claim") as refused:
                await alice.engine.create_payment_channel(BOB.address, None, 20)
            assert refused.value.refusal is Refusal.CONFLICT
            alice.engine.announced = honest
            channel = await open_virtual_channel(alice, bob, None, 3)
            assert (await alice.engine.payment_channel(channel))["intermediaries"] == [
                IRENE.address
            ]
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()


async def _queued(party: Party, ledger: bytes) -> int:
    """Proposals on ``ledger`` that ``party`` holds uncountersigned."""
    runtime = party.engine.ledger_runtime(ledger)
    assert runtime is not None
    return len(runtime.queue)


async def test_a_funding_that_fails_on_one_hop_pays_back_the_other(setting: Setting) -> None:
    """Irene's guarantee on her ledger with Bob is refused once she has countersigned
    Alice's on their ledger: the funding fails, and the guarantee Alice's ledger took is
    paid back as deposited instead of staying locked there for ever."""
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            left = await open_ledger(alice, irene, 20)
            right = await open_ledger(irene, bob, 10)
            request = irene.engine._ledger_request

            def refuse_right(step: Any, effect: Any) -> None:
                """Irene's proposal to Bob: held back until she countersigned Alice's
                guarantee, then refused."""
                if isinstance(effect, ProposeLedgerUpdate) and effect.ledger_id == right:
                    runtime = irene.engine.ledger_runtime(left)
                    if runtime is None or not runtime.outcome.guarantees:
                        return
                    raise CommandRefusedError(Refusal.CONFLICT, "refused by the test")
                request(step, effect)

            irene.engine._ledger_request = refuse_right  # type: ignore[method-assign]
            fund_id = await alice.engine.create_payment_channel(BOB.address, [IRENE.address], 5)
            for party in parties:
                entry = await party.engine.wait_objective(fund_id)
                assert entry.failure is not None
            for party in (alice, irene):
                await until(lambda p=party: allocations(p, left), lambda value: value == [20, 0])  # type: ignore[misc]
            await until(lambda: _queued(alice, left), lambda value: value == 0)
            irene.engine._ledger_request = request  # type: ignore[method-assign]
            await open_virtual_channel(alice, irene, [], 4)
            for party in (alice, irene):
                assert (await allocations(party, left))[:2] == [16, 0]
            nursery.cancel_scope.cancel()
    for party in parties:
        assert party.log.verify().ok
        party.close()
