"""Ledger channels at run time: proposals logged, countersigned, re-sent, replayed, paid out."""

from __future__ import annotations

import secrets

import pytest
import trio

from node.chain import ChainClient
from node.core import Guarantee, address_to_destination, uint256_from_bytes
from node.engine import CommandRefusedError, Refusal
from node.engine._ledger_codec import signed_proposal_to_proto
from node.proto import wire_pb2
from node.protocols import (
    Add,
    ObjectiveKind,
    ProposeLedgerUpdate,
    Remove,
    SignedProposal,
    SignLedgerProposal,
)
from tests.actors import ALICE, BOB, IRENE
from tests.engine.engine_support import (
    Party,
    Setting,
    allocations,
    eventually,
    open_ledger,
    start_parties,
    until,
)
from tests.engine.test_engine_hostile import inject

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def add_guarantee(target: bytes, amount: int = 4, left_deposit: int = 3) -> Add:
    """Lock ``amount``: Alice (left) puts in ``left_deposit``, Bob the rest."""
    left, right = (address_to_destination(p.address) for p in (ALICE, BOB))
    return Add(Guarantee(target, amount, left, right), left_deposit)


async def wait_turn(party: Party, ledger: bytes, turn: int) -> None:
    await until(
        lambda: party.engine.ledger_channel(ledger),
        lambda value: value["supported_turn_num"] == turn,
    )


def guarantees(party: Party, ledger: bytes) -> list[tuple[bytes, int]]:
    view = party.engine.deriver.channel(ledger)
    assert view is not None
    return [(g.target, uint256_from_bytes(g.amount)) for g in view.guarantees]


async def test_add_then_remove_then_close_pays_out_the_ledger(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    alice, bob = setting.pair()
    target = secrets.token_bytes(32)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            ledger = await open_ledger(alice, bob, 5, 3)
            add = add_guarantee(target)
            # The follower agrees first: it countersigns when the proposal arrives.
            await bob.engine.update_ledger(SignLedgerProposal(ledger, add))
            await alice.engine.update_ledger(ProposeLedgerUpdate(ledger, add))
            await alice.engine.update_ledger(ProposeLedgerUpdate(ledger, add))  # once only
            for party in (alice, bob):
                await wait_turn(party, ledger, 2)
                assert guarantees(party, ledger) == [(target, 4)]
                assert await allocations(party, ledger) == [2, 2, 4]
            # The leader proposes first: the follower queues it until asked.
            remove = Remove(target, 1)
            await alice.engine.update_ledger(ProposeLedgerUpdate(ledger, remove))
            await until(lambda: bob.engine.ledger(ledger), lambda value: value.queue != ())  # type: ignore[union-attr]
            assert (await bob.engine.ledger_channel(ledger))["supported_turn_num"] == 2
            await bob.engine.update_ledger(SignLedgerProposal(ledger, remove))
            for party in (alice, bob):
                await wait_turn(party, ledger, 3)
                assert guarantees(party, ledger) == []
                assert await allocations(party, ledger) == [3, 5]
            defund_id = await alice.engine.close_ledger_channel(ledger)
            assert defund_id.kind is ObjectiveKind.DIRECT_DEFUND
            for party in (alice, bob):
                assert (await party.engine.wait_objective(defund_id)).done
            nursery.cancel_scope.cancel()
    assert chain_snapshot.balance(ALICE.address) == 3
    assert chain_snapshot.balance(BOB.address) == 5
    for party in (alice, bob):
        records = [r.WhichOneof("payload") for r in party.log.read()]
        assert records.count("accepted_proposal") == 2
        assert party.log.verify().ok
        party.close()


async def test_lost_proposal_is_sent_again_and_queues_survive_restart(setting: Setting) -> None:
    network = setting.network
    alice, bob = setting.pair()
    first, second = (add_guarantee(secrets.token_bytes(32), 2, 1) for _ in range(2))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            ledger = await open_ledger(alice, bob, 5, 3)
            await alice.engine.update_ledger(ProposeLedgerUpdate(ledger, first))
            await until(lambda: bob.engine.ledger(ledger), lambda value: value.queue != ())  # type: ignore[union-attr]
            network.dropped.add((ALICE.address, BOB.address))
            await alice.engine.update_ledger(ProposeLedgerUpdate(ledger, second))
            nursery.cancel_scope.cancel()
    for party in (alice, bob):
        party.close()
    # Restarted from their logs: Alice's two proposals await Bob; Bob holds the first.
    alice, bob = setting.pair()
    leader, follower = [await p.engine.ledger(ledger) for p in (alice, bob)]
    assert leader is not None
    assert follower is not None
    assert [q.signed.proposal for q in leader.queue] == [first, second]
    assert [q.signed.proposal for q in follower.queue] == [first]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            for proposal in (second, first):
                await bob.engine.update_ledger(SignLedgerProposal(ledger, proposal))
            await wait_turn(alice, ledger, 2)  # Bob's countersignature of the first
            assert (await bob.engine.ledger_channel(ledger))["supported_turn_num"] == 2
            network.dropped.clear()  # the timer sends the second proposal again
            for party in (alice, bob):
                await wait_turn(party, ledger, 3)
                assert await allocations(party, ledger) == [3, 1, 2, 2]
            nursery.cancel_scope.cancel()
    for party in (alice, bob):
        assert party.log.verify().ok
        party.close()


async def test_ledger_requests_and_proposals_that_break_rules_are_refused(setting: Setting) -> None:
    network = setting.network
    alice, bob = setting.pair()
    add = add_guarantee(secrets.token_bytes(32))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            ledger = await open_ledger(alice, bob, 5, 3)
            refusals: list[tuple[Party, ProposeLedgerUpdate | SignLedgerProposal, Refusal]] = [
                (alice, SignLedgerProposal(ledger, add), Refusal.INVALID),
                (bob, ProposeLedgerUpdate(ledger, add), Refusal.CONFLICT),
                (alice, ProposeLedgerUpdate(b"\x01" * 32, add), Refusal.NOT_FOUND),
                (alice, ProposeLedgerUpdate(ledger, Remove(b"\x02" * 32, 0)), Refusal.CONFLICT),
            ]
            for party, effect, refusal in refusals:
                with pytest.raises(CommandRefusedError) as caught:
                    await party.engine.update_ledger(effect)
                assert caught.value.refusal is refusal
            # A stranger's proposal, and Alice's signed by someone else.
            state = await bob.engine.ledger(ledger)
            assert state is not None
            forged = SignedProposal(
                ledger,
                2,
                add,
                IRENE.sign_state(state.state(2, state.outcome)),
            )
            for sender in (IRENE, ALICE):
                payload = wire_pb2.Payload(objective_id="Ledger-0x" + ledger.hex())
                payload.ledger_proposal.CopyFrom(signed_proposal_to_proto(forged))
                await inject(network, sender, bob, payload)
            await eventually(lambda: _rejections(bob) >= 2)
            assert (await bob.engine.ledger(ledger)).queue == ()  # type: ignore[union-attr]
            nursery.cancel_scope.cancel()
    reasons = [r.rejected.reason for r in bob.log.read() if r.WhichOneof("payload") == "rejected"]
    assert reasons[0].startswith("NOT_A_PARTICIPANT")
    assert reasons[1].startswith("BAD_SIGNATURE")
    for party in (alice, bob):
        party.close()


def _rejections(party: Party) -> int:
    return sum(1 for r in party.log.read() if r.WhichOneof("payload") == "rejected")
