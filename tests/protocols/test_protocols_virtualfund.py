"""VirtualFund: each pause point for Alice, an intermediary and Bob, full runs over
0, 1 and 2 intermediaries with real ledger views, idempotence and error paths."""

from __future__ import annotations

import dataclasses
import random

import pytest

from node.core import (
    Allocation,
    Guarantee,
    SignedState,
    SingleAssetExit,
    address_to_destination,
    channel_id,
)
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols import (
    Add,
    ChannelSnapshot,
    LedgerChannel,
    ObjectiveId,
    ObjectiveKind,
    ObjectiveView,
    ProposeLedgerUpdate,
    SendSignedState,
    SignLedgerProposal,
    StateReceived,
    TransactionKind,
    TransactionSubmitted,
    VirtualFund,
    VirtualFundWaitingFor,
    add_for,
    crank_virtual_fund,
    ledger_propose,
    ledger_receive,
    ledger_sign_next,
    new_ledger_channel,
    new_virtual_fund,
    update_virtual_fund,
    virtual_amounts,
    virtual_fund_from_prefund,
)
from tests.protocols.protocols_fakes import ALICE, BOB, IRENE, NATIVE, TOKEN, simple_exit
from tests.protocols.protocols_virtual_fakes import (
    IVAN,
    LEDGER_DEPOSIT,
    PATHS,
    PAYEE_AMOUNT,
    PAYER_AMOUNT,
    PAYMENT_APP,
    funded_ledger,
    make_parties,
    path_ledgers,
    run_virtual,
    setup_state,
    signed_by,
    virtual_fixed,
    virtual_outcome,
)

W = VirtualFundWaitingFor
PATH = PATHS[1]
FIXED = virtual_fixed(PATH)
V = channel_id(FIXED)
OUTCOME = virtual_outcome(PATH)
PREFUND = setup_state(FIXED, OUTCOME, 0)
POSTFUND = setup_state(FIXED, OUTCOME, 1)
# Alice leads the Alice-Irene ledger; Bob leads the Irene-Bob ledger.
LEDGER_AI = funded_ledger(ALICE, IRENE, nonce=1)
LEDGER_IB = funded_ledger(BOB, IRENE, nonce=2)
ADD_AI = add_for(FIXED, 0, virtual_amounts(FIXED, OUTCOME))
ADD_IB = add_for(FIXED, 1, virtual_amounts(FIXED, OUTCOME))
PREFUND_ALL = signed_by(PREFUND, PATH)


def objective(signer_index: int) -> VirtualFund:
    return new_virtual_fund(FIXED, OUTCOME, PATH[signer_index].address, PAYMENT_APP)


def view(ledger: SignedState, index: int) -> LedgerChannel:
    return new_ledger_channel(ledger, PATH[index].address)


def views(index: int) -> tuple[LedgerChannel | None, LedgerChannel | None]:
    left = view(LEDGER_AI, index) if index == 1 else view(LEDGER_IB, index) if index == 2 else None
    right = view(LEDGER_AI, index) if index == 0 else view(LEDGER_IB, index) if index == 1 else None
    return left, right


def snap(
    index: int,
    latest: tuple[SignedState | None, ...] = (None, None, None),
    supported: SignedState | None = None,
    left: LedgerChannel | None = None,
    right: LedgerChannel | None = None,
) -> ObjectiveView:
    default_left, default_right = views(index)
    return ObjectiveView(
        ChannelSnapshot(FIXED, latest, supported), left or default_left, right or default_right
    )


def agreed(ledger: SignedState, add: Add) -> tuple[LedgerChannel, LedgerChannel]:
    """(leader's, follower's) views after both signed ``add``."""
    leader_signer = ALICE if ledger is LEDGER_AI else BOB
    leader = new_ledger_channel(ledger, leader_signer.address)
    follower = new_ledger_channel(ledger, IRENE.address)
    leader, proposal = ledger_propose(leader, add, leader_signer)
    follower = ledger_receive(follower, proposal)
    follower, answer = ledger_sign_next(follower, add, IRENE)
    return ledger_receive(leader, answer), follower


PREFUND_DONE = (PREFUND_ALL, PREFUND_ALL, PREFUND_ALL)


def test_id_and_guarantees() -> None:
    assert objective(0).id == ObjectiveId(ObjectiveKind.VIRTUAL_FUND, V)
    assert str(objective(0).id) == f"VirtualFunding-0x{V.hex()}"
    alice, irene, bob = (address_to_destination(s.address) for s in PATH)
    assert Add(Guarantee(V, 12, alice, irene), PAYER_AMOUNT) == ADD_AI
    assert Add(Guarantee(V, 12, irene, bob), PAYER_AMOUNT) == ADD_IB
    assert FIXED.app_definition == PAYMENT_APP


def test_alice_signs_and_sends_the_prefund_to_everyone() -> None:
    result = crank_virtual_fund(objective(0), snap(0), ALICE)
    mine = signed_by(PREFUND, [ALICE])
    assert result.effects == (
        SendSignedState(IRENE.address, objective(0).id, mine),
        SendSignedState(BOB.address, objective(0).id, mine),
    )
    assert result.waiting_for is W.COMPLETE_PREFUND


def test_intermediary_countersigns_the_prefund() -> None:
    alices = signed_by(PREFUND, [ALICE])
    result = crank_virtual_fund(objective(1), snap(1, (alices, None, None)), IRENE)
    both = signed_by(PREFUND, [ALICE, IRENE])
    assert result.effects == (
        SendSignedState(ALICE.address, objective(1).id, both),
        SendSignedState(BOB.address, objective(1).id, both),
    )
    assert result.waiting_for is W.COMPLETE_PREFUND


def test_ledger_leaders_propose_the_guarantee_once_the_prefund_is_complete() -> None:
    alice = crank_virtual_fund(objective(0), snap(0, PREFUND_DONE, PREFUND_ALL), ALICE)
    assert alice.effects == (ProposeLedgerUpdate(channel_id(LEDGER_AI.state.fixed), ADD_AI),)
    assert alice.waiting_for is W.COMPLETE_FUNDING
    bob = crank_virtual_fund(objective(2), snap(2, PREFUND_DONE, PREFUND_ALL), BOB)
    assert bob.effects == (ProposeLedgerUpdate(channel_id(LEDGER_IB.state.fixed), ADD_IB),)
    assert bob.waiting_for is W.COMPLETE_FUNDING


def test_follower_waits_for_proposals_then_countersigns_the_expected_one() -> None:
    irene = crank_virtual_fund(objective(1), snap(1, PREFUND_DONE, PREFUND_ALL), IRENE)
    assert irene.effects == ()
    assert irene.waiting_for is W.COMPLETE_FUNDING
    alice_view, proposal = ledger_propose(view(LEDGER_AI, 0), ADD_AI, ALICE)
    irene_view = ledger_receive(view(LEDGER_AI, 1), proposal)
    result = crank_virtual_fund(
        objective(1), snap(1, PREFUND_DONE, PREFUND_ALL, left=irene_view), IRENE
    )
    assert result.effects == (SignLedgerProposal(irene_view.id, ADD_AI),)
    assert result.waiting_for is W.COMPLETE_FUNDING
    # Alice's queue holds her proposal: she does not propose again.
    again = crank_virtual_fund(
        objective(0), snap(0, PREFUND_DONE, PREFUND_ALL, right=alice_view), ALICE
    )
    assert again.effects == ()
    assert again.waiting_for is W.COMPLETE_FUNDING


def test_follower_does_not_sign_another_objectives_proposal() -> None:
    other_target = channel_id(virtual_fixed(PATH, nonce=5))
    other = Add(dataclasses.replace(ADD_AI.guarantee, target=other_target), PAYER_AMOUNT)
    _, proposal = ledger_propose(view(LEDGER_AI, 0), other, ALICE)
    irene_view = ledger_receive(view(LEDGER_AI, 1), proposal)
    result = crank_virtual_fund(
        objective(1), snap(1, PREFUND_DONE, PREFUND_ALL, left=irene_view), IRENE
    )
    assert result.effects == ()


def test_funded_payer_signs_the_postfund_and_waits_for_it() -> None:
    alice_view, _ = agreed(LEDGER_AI, ADD_AI)
    result = crank_virtual_fund(
        objective(0), snap(0, PREFUND_DONE, PREFUND_ALL, right=alice_view), ALICE
    )
    mine = signed_by(POSTFUND, [ALICE])
    assert result.effects == (
        SendSignedState(IRENE.address, objective(0).id, mine),
        SendSignedState(BOB.address, objective(0).id, mine),
    )
    assert result.waiting_for is W.COMPLETE_POSTFUND
    signed = (mine, PREFUND_ALL, PREFUND_ALL)
    later = crank_virtual_fund(objective(0), snap(0, signed, PREFUND_ALL, right=alice_view), ALICE)
    assert later.effects == ()
    assert later.waiting_for is W.COMPLETE_POSTFUND


def test_intermediary_is_done_once_both_ledgers_hold_the_guarantee() -> None:
    _, left = agreed(LEDGER_AI, ADD_AI)
    half = crank_virtual_fund(objective(1), snap(1, PREFUND_DONE, PREFUND_ALL, left=left), IRENE)
    assert half.waiting_for is W.COMPLETE_FUNDING
    _, right = agreed(LEDGER_IB, ADD_IB)
    result = crank_virtual_fund(
        objective(1), snap(1, PREFUND_DONE, PREFUND_ALL, left=left, right=right), IRENE
    )
    assert [type(e) for e in result.effects] == [SendSignedState, SendSignedState]
    assert result.waiting_for is W.DONE
    assert result.done


def test_payee_is_done_when_the_postfund_is_supported() -> None:
    postfund_all = signed_by(POSTFUND, PATH)
    result = crank_virtual_fund(objective(2), snap(2, (postfund_all,) * 3, postfund_all), BOB)
    assert result.effects == ()
    assert result.waiting_for is W.DONE


def test_crank_is_idempotent_at_every_pause_point() -> None:
    alice_view, _ = agreed(LEDGER_AI, ADD_AI)
    for snapshot in (
        snap(0),
        snap(0, PREFUND_DONE, PREFUND_ALL),
        snap(0, PREFUND_DONE, PREFUND_ALL, right=alice_view),
    ):
        first = crank_virtual_fund(objective(0), snapshot, ALICE)
        assert crank_virtual_fund(first.objective, snapshot, ALICE) == first


@pytest.mark.parametrize("intermediaries", [0, 1, 2])
@pytest.mark.parametrize("seed", [None, 1, 2])
def test_full_run_funds_every_ledger(intermediaries: int, seed: int | None) -> None:
    path = PATHS[intermediaries]
    fixed = virtual_fixed(path)
    outcome = virtual_outcome(path)
    objectives = [new_virtual_fund(fixed, outcome, s.address, PAYMENT_APP) for s in path]
    ledgers = path_ledgers(path)
    parties = make_parties(path, objectives, ledgers)
    run_virtual(parties, random.Random(seed) if seed is not None else None)
    for party in (parties[0], parties[-1]):
        supported = party.snapshot().channel.supported
        assert supported is not None
        assert supported.state.turn_num == 1
    for index, ledger in enumerate(ledgers):
        left, right = path[index], path[index + 1]
        expected = Guarantee(
            channel_id(fixed),
            PAYER_AMOUNT + PAYEE_AMOUNT,
            address_to_destination(left.address),
            address_to_destination(right.address),
        )
        ledger_id = channel_id(ledger.state.fixed)
        for party in parties[index : index + 2]:
            outcome_now = party.ledgers[ledger_id].outcome
            assert outcome_now.guarantees == (expected,)
            paid_by = {
                outcome_now.leader.destination: outcome_now.leader.amount,
                outcome_now.follower.destination: outcome_now.follower.amount,
            }
            assert paid_by[expected.left] == LEDGER_DEPOSIT - PAYER_AMOUNT
            assert paid_by[expected.right] == LEDGER_DEPOSIT - PAYEE_AMOUNT


def test_zero_intermediaries_share_one_ledger() -> None:
    path = PATHS[0]
    fixed = virtual_fixed(path)
    alice = new_virtual_fund(fixed, virtual_outcome(path), ALICE.address, PAYMENT_APP)
    assert not alice.is_intermediary
    ledger = new_ledger_channel(funded_ledger(ALICE, BOB, nonce=3), ALICE.address)
    prefund = signed_by(setup_state(fixed, virtual_outcome(path), 0), path)
    snapshot = ObjectiveView(ChannelSnapshot(fixed, (prefund, prefund), prefund), None, ledger)
    result = crank_virtual_fund(alice, snapshot, ALICE)
    add = add_for(fixed, 0, virtual_amounts(fixed, virtual_outcome(path)))
    assert result.effects == (ProposeLedgerUpdate(ledger.id, add),)


# ------------------------------------------------------------------ error paths


def test_the_app_must_be_the_real_payment_app() -> None:
    with pytest.raises(ProtocolError, match="VirtualPaymentApp"):
        new_virtual_fund(virtual_fixed(PATH, app=TOKEN), OUTCOME, ALICE.address, PAYMENT_APP)
    zero = "0x" + "00" * 20
    with pytest.raises(ProtocolError, match="zero"):
        new_virtual_fund(virtual_fixed(PATH, app=zero), OUTCOME, ALICE.address, zero)


@pytest.mark.parametrize(
    "outcome",
    [
        (simple_exit(NATIVE, [(ALICE, 1), (IRENE, 1), (BOB, 1)]),),
        (simple_exit(NATIVE, [(BOB, 1), (ALICE, 1)]),),
        (simple_exit(NATIVE, [(ALICE, 1)]),),
        (simple_exit(NATIVE, [(ALICE, 1), (BOB, 1)]), simple_exit(TOKEN, [(ALICE, 1), (BOB, 1)])),
        (
            SingleAssetExit(
                NATIVE,
                [
                    Allocation(address_to_destination(ALICE.address), 1),
                    Guarantee(V, 1, bytes(32), bytes(32)).to_allocation(),
                ],
            ),
        ),
    ],
)
def test_the_outcome_must_be_exactly_payer_then_payee(
    outcome: tuple[SingleAssetExit, ...],
) -> None:
    with pytest.raises(ProtocolError, match="outcome"):
        new_virtual_fund(FIXED, outcome, ALICE.address, PAYMENT_APP)


def test_non_participants_and_repeated_participants_are_refused() -> None:
    with pytest.raises(ProtocolError, match="not a participant"):
        new_virtual_fund(FIXED, OUTCOME, IVAN.address, PAYMENT_APP)
    looped = virtual_fixed((ALICE, IRENE, ALICE, BOB))
    with pytest.raises(ProtocolError, match="twice"):
        new_virtual_fund(looped, virtual_outcome(PATH), ALICE.address, PAYMENT_APP)


def test_a_peers_prefund_starts_the_objective() -> None:
    event = StateReceived(ALICE.address, signed_by(PREFUND, [ALICE]))
    assert virtual_fund_from_prefund(event, BOB.address, PAYMENT_APP) == objective(2)
    late = StateReceived(ALICE.address, signed_by(POSTFUND, [ALICE]))
    with pytest.raises(PeerStateError) as wrong_turn:
        virtual_fund_from_prefund(late, BOB.address, PAYMENT_APP)
    assert wrong_turn.value.fault is PeerFault.WRONG_TURN
    with pytest.raises(PeerStateError) as wrong_app:
        virtual_fund_from_prefund(event, BOB.address, TOKEN)
    assert wrong_app.value.fault is PeerFault.MALFORMED


def test_update_refuses_states_of_strangers_and_of_another_outcome() -> None:
    stranger = StateReceived(IVAN.address, signed_by(PREFUND, [ALICE]))
    with pytest.raises(PeerStateError) as by_stranger:
        update_virtual_fund(objective(2), stranger)
    assert by_stranger.value.fault is PeerFault.NOT_A_PARTICIPANT
    forged = SignedState(PREFUND, {0: IVAN.sign_state(PREFUND)})
    with pytest.raises(PeerStateError) as forged_error:
        update_virtual_fund(objective(2), StateReceived(ALICE.address, forged))
    assert forged_error.value.fault is PeerFault.NOT_A_PARTICIPANT
    other = setup_state(FIXED, virtual_outcome(PATH, payer=11), 0)
    with pytest.raises(PeerStateError) as other_outcome:
        update_virtual_fund(objective(2), StateReceived(ALICE.address, signed_by(other, [ALICE])))
    assert other_outcome.value.fault is PeerFault.MALFORMED
    with pytest.raises(ProtocolError, match="no transaction"):
        update_virtual_fund(objective(2), TransactionSubmitted(TransactionKind.DEPOSIT, V, NATIVE))


def test_crank_refuses_missing_or_foreign_ledgers() -> None:
    no_ledger = ObjectiveView(ChannelSnapshot(FIXED, PREFUND_DONE, PREFUND_ALL), None, None)
    with pytest.raises(ProtocolError, match="right_ledger"):
        crank_virtual_fund(objective(0), no_ledger, ALICE)
    foreign = new_ledger_channel(funded_ledger(ALICE, IVAN, nonce=4), ALICE.address)
    with pytest.raises(ProtocolError, match="not between us and"):
        crank_virtual_fund(objective(0), snap(0, PREFUND_DONE, PREFUND_ALL, right=foreign), ALICE)
    token = new_ledger_channel(funded_ledger(ALICE, IRENE, nonce=4, asset=TOKEN), ALICE.address)
    with pytest.raises(ProtocolError, match="another asset"):
        crank_virtual_fund(objective(0), snap(0, PREFUND_DONE, PREFUND_ALL, right=token), ALICE)
    with pytest.raises(ProtocolError, match="signer"):
        crank_virtual_fund(objective(0), snap(0), BOB)


def test_crank_refuses_a_ledger_that_cannot_fund_the_channel() -> None:
    rich = virtual_outcome(PATH, payer=LEDGER_DEPOSIT + 1)
    alice = new_virtual_fund(FIXED, rich, ALICE.address, PAYMENT_APP)
    prefund = signed_by(setup_state(FIXED, rich, 0), PATH)
    with pytest.raises(ProtocolError, match="afford"):
        crank_virtual_fund(alice, snap(0, (prefund,) * 3, prefund), ALICE)


def test_crank_refuses_another_guarantee_for_the_channel() -> None:
    wrong = Add(dataclasses.replace(ADD_AI.guarantee, amount=5), 5)
    alice_view, _ = agreed(LEDGER_AI, wrong)
    with pytest.raises(ProtocolError, match="another guarantee"):
        crank_virtual_fund(
            objective(0), snap(0, PREFUND_DONE, PREFUND_ALL, right=alice_view), ALICE
        )


def test_crank_refuses_a_channel_supporting_another_prefund() -> None:
    other = signed_by(setup_state(FIXED, virtual_outcome(PATH, payee=3), 0), PATH)
    with pytest.raises(ProtocolError, match="prefund"):
        crank_virtual_fund(objective(0), snap(0, (other,) * 3, other), ALICE)


def test_concurrent_channels_over_one_ledger_each_take_their_turn() -> None:
    second_fixed = virtual_fixed(PATH, nonce=100)
    second = new_virtual_fund(second_fixed, OUTCOME, IRENE.address, PAYMENT_APP)
    second_alice = new_virtual_fund(second_fixed, OUTCOME, ALICE.address, PAYMENT_APP)
    second_add = add_for(second_fixed, 0, virtual_amounts(second_fixed, OUTCOME))
    second_prefund = signed_by(setup_state(second_fixed, OUTCOME, 0), PATH)

    def second_snap(left: LedgerChannel | None, right: LedgerChannel | None) -> ObjectiveView:
        channel = ChannelSnapshot(second_fixed, (second_prefund,) * 3, second_prefund)
        return ObjectiveView(channel, left, right)

    # Alice leads: the first proposal queued does not block the second.
    alice_view, first_proposal = ledger_propose(view(LEDGER_AI, 0), ADD_AI, ALICE)
    asked = crank_virtual_fund(second_alice, second_snap(None, alice_view), ALICE)
    assert asked.effects == (ProposeLedgerUpdate(alice_view.id, second_add),)
    alice_view, second_proposal = ledger_propose(alice_view, second_add, ALICE)
    # Irene receives them out of order; each asks to countersign its own once queued
    # (the engine signs the head first, then the next).
    irene_view = ledger_receive(view(LEDGER_AI, 1), second_proposal)
    irene_view = ledger_receive(irene_view, first_proposal)
    _, irene_right = views(1)
    queued = crank_virtual_fund(second, second_snap(irene_view, irene_right), IRENE)
    assert queued.effects == (SignLedgerProposal(irene_view.id, second_add),)
    head = crank_virtual_fund(
        objective(1), snap(1, PREFUND_DONE, PREFUND_ALL, left=irene_view), IRENE
    )
    assert head.effects == (SignLedgerProposal(irene_view.id, ADD_AI),)
    irene_view, _ = ledger_sign_next(irene_view, ADD_AI, IRENE)
    turn = crank_virtual_fund(second, second_snap(irene_view, irene_right), IRENE)
    assert turn.effects == (SignLedgerProposal(irene_view.id, second_add),)
