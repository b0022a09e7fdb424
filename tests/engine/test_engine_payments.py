"""Vouchers between in-process engines: Alice pays Bob through Irene, many times."""

from __future__ import annotations

import time

import pytest
import trio

from node.chain import ChainClient
from node.core import voucher_to_proto
from node.engine import CommandRefusedError, Refusal
from node.proto import wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind
from tests.actors import ALICE, BOB, IRENE
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
PAYMENTS = 1_000
PAYERS = 20  # concurrent callers: their payments share log batches and messages


async def open_payment_channel(parties: tuple[Party, Party, Party], amount: int) -> bytes:
    alice, irene, bob = parties
    await open_ledger(alice, irene, 10**6)
    await open_ledger(irene, bob, 10**6)
    return await open_virtual_channel(alice, bob, [IRENE.address], amount, also=[irene])


def accepted_vouchers(party: Party) -> list[int]:
    return [
        int.from_bytes(r.accepted_voucher.voucher.amount, "big")
        for r in party.log.read()
        if r.WhichOneof("payload") == "accepted_voucher" and not r.accepted_voucher.sent
    ]


def rejected_reasons(party: Party) -> list[str]:
    return [r.rejected.reason for r in party.log.read() if r.WhichOneof("payload") == "rejected"]


async def test_a_thousand_payments_reach_the_payee(setting: Setting) -> None:
    parties = setting.path()
    alice, _, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 10**5)
            totals: list[int] = []

            async def payer() -> None:
                for _ in range(PAYMENTS // PAYERS):
                    totals.append(await alice.engine.pay(channel, 1))

            started = time.perf_counter()
            async with trio.open_nursery() as payers:
                for _ in range(PAYERS):
                    payers.start_soon(payer)
            await until(
                lambda: bob.engine.payment_channel(channel),
                lambda value: value["received"] == "1000",
            )
            elapsed = time.perf_counter() - started
            print(f"{PAYMENTS} payments in {elapsed:.3f} s: {PAYMENTS / elapsed:.0f}/s")
            nursery.cancel_scope.cancel()
    # Payments taken in one step share one voucher for their total: every payment is
    # answered with a voucher covering it, the last one covers them all.
    assert max(totals) == PAYMENTS
    assert len(totals) == PAYMENTS
    signed = sorted(set(totals))
    assert len(signed) < PAYMENTS / 10  # many payments to a voucher
    assert (await alice.engine.payment_channel(channel))["paid"] == str(PAYMENTS)
    bob_view = await bob.engine.payment_channel(channel)
    assert bob_view["vouchers"] == len(signed)
    assert vouchers_logged(alice, sent=True) == signed
    assert rejected_reasons(bob) == []
    updates = [params for name, params in bob.notifications if name == "payment_channel_updated"]
    assert updates[-1]["received"] == str(PAYMENTS)
    assert len(updates) < PAYMENTS  # one notice per loop step, not per voucher
    frames = [r for r in bob.log.read() if r.WhichOneof("payload") == "received_messages"]
    assert len(frames) < PAYMENTS  # vouchers travel many to a message
    for party in parties:
        assert party.log.verify().ok
        party.close()


def vouchers_logged(party: Party, *, sent: bool) -> list[int]:
    """The amounts of the vouchers a party logged, in log order."""
    return [
        int.from_bytes(r.accepted_voucher.voucher.amount, "big")
        for r in party.log.read()
        if r.WhichOneof("payload") == "accepted_voucher" and r.accepted_voucher.sent == sent
    ]


async def test_bad_payments_and_vouchers_are_refused(setting: Setting) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    network = alice.transport._network
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 10)
            assert await alice.engine.pay(channel, 7) == 7
            for amount, refusal in ((4, Refusal.CONFLICT), (0, Refusal.CONFLICT)):
                with pytest.raises(CommandRefusedError) as caught:
                    await alice.engine.pay(channel, amount)
                assert caught.value.refusal is refusal
            with pytest.raises(CommandRefusedError) as caught:
                await bob.engine.pay(channel, 1)
            assert caught.value.refusal is Refusal.CONFLICT
            with pytest.raises(CommandRefusedError) as caught:
                await alice.engine.pay(b"\x05" * 32, 1)
            assert caught.value.refusal is Refusal.NOT_FOUND
            await until(
                lambda: bob.engine.payment_channel(channel), lambda value: value["received"] == "7"
            )
            hostile = [
                (ALICE, ALICE.voucher(channel, 6)),  # stale: below the latest
                (ALICE, ALICE.voucher(channel, 11)),  # above the funds
                (ALICE, IRENE.voucher(channel, 8)),  # not the payer's signature
                (IRENE, ALICE.voucher(channel, 9)),  # relayed by someone else
            ]
            for sender, voucher in hostile:
                payload = wire_pb2.Payload(objective_id="x")
                payload.voucher.CopyFrom(voucher_to_proto(voucher))
                await inject(network, sender, bob, payload)
            await eventually(lambda: len(rejected_reasons(bob)) >= len(hostile))
            # The latest again (a payer sends it after a restart): quietly nothing new.
            payload = wire_pb2.Payload(objective_id="x")
            payload.voucher.CopyFrom(voucher_to_proto(ALICE.voucher(channel, 7)))
            accepted = len(accepted_vouchers(bob))
            message_id = await inject(network, ALICE, bob, payload)
            await eventually(lambda: handled(bob, ALICE.address, message_id))
            assert len(accepted_vouchers(bob)) == accepted
            nursery.cancel_scope.cancel()
    reasons = [reason.split(":")[0] for reason in rejected_reasons(bob)]
    assert reasons == [
        "STALE_VOUCHER",
        "INSUFFICIENT_FUNDS",
        "NOT_A_PARTICIPANT",
        "NOT_A_PARTICIPANT",
    ]
    assert (await bob.engine.payment_channel(channel))["received"] == "7"
    for party in (alice, irene, bob):
        party.close()


async def test_close_moves_what_was_paid_into_the_ledgers_and_on_chain(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    parties = setting.path()
    alice, irene, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            left = await open_ledger(alice, irene, 10)
            right = await open_ledger(irene, bob, 10)
            fund_id = await alice.engine.create_payment_channel(BOB.address, [IRENE.address], 4)
            for party in parties:
                assert (await party.engine.wait_objective(fund_id)).done
            channel = fund_id.channel_id
            await until(
                lambda: bob.engine.payment_channel(channel), lambda value: value["status"] == "OPEN"
            )
            for _ in range(3):
                await alice.engine.pay(channel, 1)
            await until(
                lambda: bob.engine.payment_channel(channel), lambda value: value["received"] == "3"
            )
            defund_id = await alice.engine.close_payment_channel(channel)
            entries = [await party.engine.wait_objective(defund_id) for party in parties]
            assert [entry.failure for entry in entries] == [None, None, None]
            for party, ledger in ((alice, left), (irene, left), (irene, right), (bob, right)):
                await until(
                    lambda p=party, x=ledger: allocations(p, x), lambda value: value == [7, 3]
                )  # type: ignore[misc]
            with pytest.raises(CommandRefusedError):
                await alice.engine.pay(channel, 1)
            for closer, ledger in ((alice, left), (irene, right)):
                close_id = await closer.engine.close_ledger_channel(ledger)
                for party in parties:
                    if (ledger in (left,) and party is bob) or (ledger == right and party is alice):
                        continue
                    assert (await party.engine.wait_objective(close_id)).done
            nursery.cancel_scope.cancel()
    assert chain_snapshot.balance(ALICE.address) == 7
    assert chain_snapshot.balance(IRENE.address) == 10
    assert chain_snapshot.balance(BOB.address) == 3
    for party in parties:
        assert party.log.verify().ok
        party.close()


async def test_payee_restarted_keeps_its_largest_voucher(setting: Setting) -> None:
    parties = setting.path()
    alice, _, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 100)
            for _ in range(3):
                await alice.engine.pay(channel, 1)
            await until(
                lambda: bob.engine.payment_channel(channel), lambda value: value["received"] == "3"
            )
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()
    parties = setting.path()
    alice, irene, bob = parties
    network = alice.transport._network
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            for party in parties:
                fund_id = next(
                    iter(o for o in party.engine.state.objectives if o.channel_id == channel)
                )
                assert (await party.engine.wait_objective(fund_id)).done
            assert await alice.engine.pay(channel, 2) == 5
            await until(
                lambda: bob.engine.payment_channel(channel), lambda value: value["received"] == "5"
            )
            replay = wire_pb2.Payload(objective_id="x")
            replay.voucher.CopyFrom(voucher_to_proto(ALICE.voucher(channel, 3)))
            await inject(network, ALICE, bob, replay)
            await eventually(lambda: len(rejected_reasons(bob)) == 1)
            nursery.cancel_scope.cancel()
    assert rejected_reasons(bob)[0].startswith("STALE_VOUCHER")
    received = [
        r.accepted_voucher for r in bob.log.read() if r.WhichOneof("payload") == "accepted_voucher"
    ]
    assert [voucher.sent for voucher in received] == [False] * 4
    for party in (alice, irene, bob):
        assert party.log.verify().ok
        party.close()


async def test_payer_restarted_sends_its_latest_voucher_again(setting: Setting) -> None:
    """A crash between logging a voucher and handing it to the transport loses nothing:
    the restarted payer offers its latest voucher again (here one never sent at all)."""
    parties = setting.path()
    alice, _, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 100)
            await alice.engine.pay(channel, 2)
            await until(
                lambda: bob.engine.payment_channel(channel), lambda value: value["received"] == "2"
            )
            await alice.engine.create_voucher(channel, 3)  # logged, never sent
            await quiet()
            assert (await bob.engine.payment_channel(channel))["received"] == "2"
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()
    parties = setting.path()
    alice, _, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            await until(
                lambda: bob.engine.payment_channel(channel), lambda value: value["received"] == "5"
            )
            nursery.cancel_scope.cancel()
    assert accepted_vouchers(bob) == [2, 5]
    assert rejected_reasons(bob) == []
    for party in parties:
        party.close()


def _last_notice(party: Party) -> dict[str, object]:
    return [params for name, params in party.notifications if name == "payment_channel_updated"][-1]


async def test_notices_nobody_takes_are_not_built(setting: Setting) -> None:
    """The loop builds a channel's notice (a module read and a decode) only while
    someone takes that name: with none, payments go on and no notice is made."""
    parties = setting.path()
    alice, _, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 100)
            bob.engine.wanted = lambda name: name == "objective_completed"
            before = len(bob.notifications)
            await alice.engine.pay(channel, 3)
            await eventually(lambda: 3 in accepted_vouchers(bob))
            assert len(bob.notifications) == before
            bob.engine.wanted = lambda name: True
            await alice.engine.pay(channel, 2)
            await eventually(lambda: _last_notice(bob)["received"] == "5")
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()


async def test_a_voucher_is_notified_once_its_record_is_in_the_log(setting: Setting) -> None:
    """A notice of a voucher is published after the write that logs it, never before."""
    parties = setting.path()
    alice, _, bob = parties
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, *parties)
            channel = await open_payment_channel(parties, 100)
            await alice.engine.pay(channel, 1)
            await eventually(lambda: _last_notice(bob)["received"] == "1")
            payload = wire_pb2.Payload(
                objective_id=str(ObjectiveId(ObjectiveKind.VIRTUAL_FUND, channel))
            )
            payload.voucher.CopyFrom(voucher_to_proto(ALICE.voucher(channel, 4)))
            logged = len(bob.notifications)
            await inject(setting.network, ALICE, bob, payload)
            await eventually(lambda: _last_notice(bob)["received"] == "4")
            assert 4 in accepted_vouchers(bob)
            assert len(bob.notifications) > logged
            nursery.cancel_scope.cancel()
    for party in parties:
        party.close()
