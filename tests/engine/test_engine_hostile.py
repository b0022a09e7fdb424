"""Hostile peer messages are rejected with a reason, logged, answered; the node goes on."""

from __future__ import annotations

import pytest
import trio

from node.chain import ChainClient
from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    signed_state_to_proto,
)
from node.engine import MemoryNetwork
from node.proto import wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind
from tests.actors import ALICE, BOB, IRENE
from tests.engine.engine_support import NATIVE, Party, Setting, start_parties

pytestmark = [pytest.mark.slow, pytest.mark.integration]
MALLORY = IRENE


def payload(kind: ObjectiveKind, signed: SignedState) -> wire_pb2.Payload:
    objective_id = ObjectiveId(kind, channel_id(signed.state.fixed))
    return wire_pb2.Payload(
        objective_id=str(objective_id), signed_state=signed_state_to_proto(signed)
    )


def ledger_state(
    app: str, parties: tuple[Signer, Signer], amounts: tuple[int, int], turn: int, nonce: int
) -> State:
    fixed = FixedPart([p.address for p in parties], nonce, app, 60)
    allocations = [
        Allocation(address_to_destination(p.address), a)
        for p, a in zip(parties, amounts, strict=True)
    ]
    return State(fixed, b"", [SingleAssetExit(NATIVE, allocations)], turn, turn > 1)


async def inject(
    network: MemoryNetwork, sender: Signer, to: Party, *payloads: wire_pb2.Payload
) -> int:
    """A message from ``sender`` that its engine never sent (a peer misbehaving); its id."""
    envelope = network.inject(sender.address, to.address, payloads)
    await trio.lowlevel.checkpoint()
    return envelope.id


def hostile_payloads(app: str, fund_id: ObjectiveId) -> list[wire_pb2.Payload]:
    """What a misbehaving Alice sends Bob once their channel is open, in order."""
    postfund = ledger_state(app, (ALICE, BOB), (5, 3), 1, 1)
    # Signatures at Alice's index: by Bob, and by a stranger.
    forged = SignedState(postfund, {0: BOB.sign_state(postfund)})
    stranger = SignedState(postfund, {0: MALLORY.sign_state(postfund)})
    # A turn DirectFund never sends, correctly signed by Alice.
    wrong_turn = ledger_state(app, (ALICE, BOB), (5, 3), 5, 1)
    # A close of a channel Bob never heard of.
    unknown = ledger_state(app, (ALICE, BOB), (5, 3), 2, 99)
    # A channel between Alice and Mallory: Bob is not in it.
    foreign = ledger_state(app, (ALICE, MALLORY), (1, 1), 0, 3)
    virtual = ledger_state(app, (ALICE, BOB), (1, 1), 0, 7)
    return [
        payload(ObjectiveKind.DIRECT_FUND, forged),
        payload(ObjectiveKind.DIRECT_FUND, stranger),
        payload(ObjectiveKind.DIRECT_FUND, ALICE.countersign(SignedState(wrong_turn))),
        payload(ObjectiveKind.DIRECT_DEFUND, ALICE.countersign(SignedState(unknown))),
        payload(ObjectiveKind.DIRECT_FUND, ALICE.countersign(SignedState(foreign))),
        wire_pb2.Payload(objective_id="Nonsense-0x00", signed_state=signed_state_to_proto(forged)),
        # A virtual channel whose app is not the VirtualPaymentApp.
        payload(ObjectiveKind.VIRTUAL_FUND, ALICE.countersign(SignedState(virtual))),
        wire_pb2.Payload(objective_id=str(fund_id)),
    ]


async def mallory_is_refused(network: MemoryNetwork, bob: Party, app: str) -> None:
    """Mallory proposes channels Bob must refuse; she hears why."""
    # Mallory proposes a channel that asks Bob for more than his policy allows.
    greedy = ledger_state(app, (MALLORY, BOB), (1, 11), 0, 4)
    # ... and one whose total overflows the adjudicator's uint256 holdings.
    overflowing = ledger_state(app, (MALLORY, BOB), (2**256 - 1, 1), 0, 5)
    await inject(
        network,
        MALLORY,
        bob,
        payload(ObjectiveKind.DIRECT_FUND, MALLORY.countersign(SignedState(greedy))),
        payload(ObjectiveKind.DIRECT_FUND, MALLORY.countersign(SignedState(overflowing))),
    )
    _, mallory_inbox = network.inbox(MALLORY.address)
    answer = None
    while answer is None:  # Bob's acknowledgement comes too, as a packet of its own
        answer_sender, answer, _ = await mallory_inbox.receive()
        assert answer_sender == BOB.address
    policy, overflow = answer.payloads
    assert policy.rejection.reason == wire_pb2.REJECTION_REASON_POLICY
    assert "exceeds the limit 10" in policy.rejection.detail
    assert overflow.rejection.reason == wire_pb2.REJECTION_REASON_MALFORMED
    assert "the total exceeds uint256" in overflow.rejection.detail


def rejections(party: Party) -> list[str]:
    return [r.rejected.reason for r in party.log.read() if r.WhichOneof("payload") == "rejected"]


async def test_hostile_peer_messages(setting: Setting, chain_snapshot: ChainClient) -> None:
    network = setting.network
    alice = setting.party("alice", ALICE, 1, deposit_max=10)
    bob = setting.party("bob", BOB, 2, deposit_max=10)
    app = setting.deployment.consensus_app
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            fund_id = await alice.engine.create_ledger_channel(
                BOB.address, 5, counterparty_amount=3, challenge_duration=60, nonce=1
            )
            await bob.engine.wait_objective(fund_id)
            await inject(network, ALICE, bob, *hostile_payloads(app, fund_id))
            await mallory_is_refused(network, bob, app)

            # Bob still works: the channel closes normally.
            defund_id = await alice.engine.close_ledger_channel(fund_id.channel_id)
            for party in (alice, bob):
                assert (await party.engine.wait_objective(defund_id)).done
            nursery.cancel_scope.cancel()
    reasons = rejections(bob)
    assert [reason.split(":")[0] for reason in reasons] == [
        "BAD_SIGNATURE",
        "NOT_A_PARTICIPANT",
        "WRONG_TURN",
        "UNKNOWN_CHANNEL",
        "NOT_A_PARTICIPANT",
        "MALFORMED",
        "MALFORMED",
        "MALFORMED",
        "POLICY",
        "MALFORMED",
    ]
    assert f"signatures[0]: by {BOB.address}, who is participant 1" in reasons[0]
    assert f"by non-participant {MALLORY.address}" in reasons[1]
    assert "is not the VirtualPaymentApp" in reasons[6]
    assert (
        str(MALLORY.address)
        not in (await bob.engine.ledger_channel(fund_id.channel_id))["participants"]
    )
    assert chain_snapshot.balance(BOB.address) == 3
    for party in (alice, bob):
        assert party.log.verify().ok
        party.close()
