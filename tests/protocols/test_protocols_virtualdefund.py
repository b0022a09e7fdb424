"""VirtualDefund: each pause point for Alice, an intermediary and Bob, full runs
(fund, pay, close) over 0, 1 and 2 intermediaries, idempotence and error paths."""

from __future__ import annotations

import random

import pytest

from node.core import SignedState, Signer, State, channel_id
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols import (
    ChannelSnapshot,
    LedgerChannel,
    ObjectiveId,
    ObjectiveKind,
    ObjectiveView,
    PayeeVouchers,
    PayerVouchers,
    ProposeLedgerUpdate,
    Remove,
    SendSignedState,
    SignLedgerProposal,
    StateReceived,
    TransactionKind,
    TransactionSubmitted,
    VirtualDefund,
    VirtualDefundWaitingFor,
    accept_voucher,
    add_for,
    crank_virtual_defund,
    final_state_for,
    ledger_propose,
    ledger_receive,
    ledger_sign_next,
    new_ledger_channel,
    new_virtual_defund,
    new_virtual_fund,
    next_voucher,
    payment_channel_from_snapshot,
    update_virtual_defund,
    virtual_amounts,
    virtual_defund_from_final,
)
from tests.protocols.protocols_fakes import ALICE, BOB, IRENE, TOKEN, simple_exit
from tests.protocols.protocols_virtual_fakes import (
    IVAN,
    LEDGER_DEPOSIT,
    PATHS,
    PAYER_AMOUNT,
    PAYMENT_APP,
    VirtualParty,
    funded_ledger,
    make_parties,
    path_ledgers,
    run_virtual,
    setup_state,
    signed_by,
    virtual_fixed,
    virtual_outcome,
)

W = VirtualDefundWaitingFor
PATH = PATHS[1]
FIXED = virtual_fixed(PATH)
V = channel_id(FIXED)
OUTCOME = virtual_outcome(PATH)
POSTFUND_ALL = signed_by(setup_state(FIXED, OUTCOME, 1), PATH)
OPEN = ChannelSnapshot(FIXED, (POSTFUND_ALL,) * 3, POSTFUND_ALL)
PAID = 4
FINAL = final_state_for(OPEN, PAID)
FINAL_ALL = signed_by(FINAL, PATH)
CLOSED = ChannelSnapshot(FIXED, (FINAL_ALL,) * 3, FINAL_ALL)
LEDGER_AI = funded_ledger(ALICE, IRENE, nonce=1)
LEDGER_IB = funded_ledger(BOB, IRENE, nonce=2)
REMOVE = Remove(V, PAYER_AMOUNT - PAID)


def guaranteed(ledger: SignedState, leader_signer: Signer) -> tuple[LedgerChannel, LedgerChannel]:
    """(leader's, Irene's) views of ``ledger`` once it guarantees V."""
    left_index = 0 if leader_signer is ALICE else 1
    add = add_for(FIXED, left_index, virtual_amounts(FIXED, OUTCOME))
    lead = new_ledger_channel(ledger, leader_signer.address)
    follow = new_ledger_channel(ledger, IRENE.address)
    lead, proposal = ledger_propose(lead, add, leader_signer)
    follow, answer = ledger_sign_next(ledger_receive(follow, proposal), add, IRENE)
    return ledger_receive(lead, answer), follow


AI_ALICE, AI_IRENE = guaranteed(LEDGER_AI, ALICE)
IB_BOB, IB_IRENE = guaranteed(LEDGER_IB, BOB)
LEDGERS = {0: (None, AI_ALICE), 1: (AI_IRENE, IB_IRENE), 2: (IB_BOB, None)}


def alice() -> VirtualDefund:
    return new_virtual_defund(OPEN, ALICE.address, PAID)


def from_alice(index: int, largest: int = 0, state: State = FINAL) -> VirtualDefund:
    event = StateReceived(ALICE.address, signed_by(state, [ALICE]))
    return virtual_defund_from_final(OPEN, PATH[index].address, event, largest)


def snap(
    index: int,
    channel: ChannelSnapshot,
    left: LedgerChannel | None = None,
    right: LedgerChannel | None = None,
) -> ObjectiveView:
    default_left, default_right = LEDGERS[index]
    return ObjectiveView(channel, left or default_left, right or default_right)


def test_final_state_moves_what_was_paid_to_bob() -> None:
    assert alice().id == ObjectiveId(ObjectiveKind.VIRTUAL_DEFUND, V)
    assert str(alice().id) == f"VirtualDefunding-0x{V.hex()}"
    assert FINAL.turn_num == 2
    assert FINAL.is_final
    assert FINAL.outcome == virtual_outcome(PATH, PAYER_AMOUNT - PAID, 2 + PAID)


def test_alice_signs_the_final_state_and_sends_it_to_everyone() -> None:
    result = crank_virtual_defund(alice(), snap(0, OPEN), ALICE)
    mine = signed_by(FINAL, [ALICE])
    assert result.effects == (
        SendSignedState(IRENE.address, alice().id, mine),
        SendSignedState(BOB.address, alice().id, mine),
    )
    assert result.waiting_for is W.FINALIZATION


def test_intermediary_and_bob_countersign() -> None:
    mine = signed_by(FINAL, [ALICE])
    channel = ChannelSnapshot(FIXED, (mine, POSTFUND_ALL, POSTFUND_ALL), POSTFUND_ALL)
    for index in (1, 2):
        objective = from_alice(index, largest=PAID)
        assert objective == VirtualDefund(FINAL, index)
        result = crank_virtual_defund(objective, snap(index, channel), PATH[index])
        assert len(result.effects) == 2
        assert result.waiting_for is W.FINALIZATION


def test_leaders_propose_the_removal_once_the_final_state_is_supported() -> None:
    result = crank_virtual_defund(alice(), snap(0, CLOSED), ALICE)
    assert result.effects == (ProposeLedgerUpdate(AI_ALICE.id, REMOVE),)
    assert result.waiting_for is W.DEFUNDING
    bob = crank_virtual_defund(from_alice(2), snap(2, CLOSED), BOB)
    assert bob.effects == (ProposeLedgerUpdate(IB_BOB.id, REMOVE),)


def test_follower_countersigns_the_removal_and_everyone_finishes() -> None:
    irene = crank_virtual_defund(from_alice(1), snap(1, CLOSED), IRENE)
    assert irene.effects == ()
    assert irene.waiting_for is W.DEFUNDING
    lead, proposal = ledger_propose(AI_ALICE, REMOVE, ALICE)
    follow = ledger_receive(AI_IRENE, proposal)
    signing = crank_virtual_defund(from_alice(1), snap(1, CLOSED, left=follow), IRENE)
    assert signing.effects == (SignLedgerProposal(follow.id, REMOVE),)
    follow, answer = ledger_sign_next(follow, REMOVE, IRENE)
    lead = ledger_receive(lead, answer)
    assert lead.outcome.guarantees == ()
    assert lead.outcome.leader.amount == LEDGER_DEPOSIT - PAID
    assert lead.outcome.follower.amount == LEDGER_DEPOSIT + PAID
    done = crank_virtual_defund(alice(), snap(0, CLOSED, right=lead), ALICE)
    assert done.effects == ()
    assert done.waiting_for is W.DONE
    half = crank_virtual_defund(from_alice(1), snap(1, CLOSED, left=follow), IRENE)
    assert half.waiting_for is W.DEFUNDING


def test_crank_is_idempotent() -> None:
    for snapshot in (snap(0, OPEN), snap(0, CLOSED)):
        first = crank_virtual_defund(alice(), snapshot, ALICE)
        assert crank_virtual_defund(first.objective, snapshot, ALICE) == first


def _pay(parties: list[VirtualParty], amounts: list[int]) -> int:
    """Alice pays each amount to Bob with a voucher; Bob accepts each; the largest."""
    channel = payment_channel_from_snapshot(parties[0].snapshot().channel)
    payer = PayerVouchers(channel.channel_id)
    payee = PayeeVouchers(channel.channel_id)
    for amount in amounts:
        payer, voucher = next_voucher(payer, amount, channel, ALICE)
        payee = accept_voucher(payee, voucher, channel)
    assert payee.received == payer.paid == sum(amounts)
    return payee.received


@pytest.mark.parametrize("intermediaries", [0, 1, 2])
@pytest.mark.parametrize("seed", [None, 7])
def test_fund_pay_and_close(intermediaries: int, seed: int | None) -> None:
    rng = random.Random(seed) if seed is not None else None
    path = PATHS[intermediaries]
    fixed = virtual_fixed(path)
    outcome = virtual_outcome(path)
    ledgers = path_ledgers(path)
    funds = [new_virtual_fund(fixed, outcome, s.address, PAYMENT_APP) for s in path]
    parties = make_parties(path, funds, ledgers)
    run_virtual(parties, rng)
    paid = _pay(parties, [1, 2, 3])
    parties[0].objective = new_virtual_defund(parties[0].snapshot().channel, ALICE.address, paid)
    parties[0].crank()
    for message in parties[0].states_out:
        party = next(p for p in parties if p.signer.address == message.recipient)
        event = StateReceived(ALICE.address, message.signed_state)
        party.objective = virtual_defund_from_final(
            party.snapshot().channel, party.signer.address, event, paid
        )
        party.store.accept(message.signed_state)
    parties[0].states_out.clear()
    run_virtual(parties, rng)
    for index, ledger in enumerate(ledgers):
        ledger_id = channel_id(ledger.state.fixed)
        left = path[index].address
        for party in parties[index : index + 2]:
            view = party.ledgers[ledger_id]
            assert view.outcome.guarantees == ()
            balances = {
                view.fixed.participants[0]: view.outcome.leader.amount,
                view.fixed.participants[1]: view.outcome.follower.amount,
            }
            right = next(p for p in balances if p != left)
            assert balances[left] == LEDGER_DEPOSIT - paid
            assert balances[right] == LEDGER_DEPOSIT + paid


# ------------------------------------------------------------------ error paths


def test_only_alice_starts_and_only_an_open_channel_with_what_she_has() -> None:
    with pytest.raises(ProtocolError, match="not the payer"):
        new_virtual_defund(OPEN, BOB.address, PAID)
    with pytest.raises(ProtocolError, match="paid"):
        new_virtual_defund(OPEN, ALICE.address, PAYER_AMOUNT + 1)
    prefund_all = signed_by(setup_state(FIXED, OUTCOME, 0), PATH)
    not_open = ChannelSnapshot(FIXED, (prefund_all,) * 3, prefund_all)
    with pytest.raises(ProtocolError, match="not open"):
        new_virtual_defund(not_open, ALICE.address, 0)


def test_bob_refuses_a_final_state_below_his_largest_voucher() -> None:
    with pytest.raises(PeerStateError) as error:
        from_alice(2, largest=PAID + 1)
    assert error.value.fault is PeerFault.STALE_VOUCHER
    # An intermediary does not hold vouchers: the check is Bob's.
    assert from_alice(1, largest=PAID + 1) == VirtualDefund(FINAL, 1)


@pytest.mark.parametrize(
    ("payer", "payee"),
    [(PAYER_AMOUNT + 1, 1), (PAYER_AMOUNT - 1, 4), (PAYER_AMOUNT - 1, 2)],
)
def test_a_final_state_must_only_move_funds_to_bob(payer: int, payee: int) -> None:
    state = State(FIXED, b"", virtual_outcome(PATH, payer, payee), 2, True)
    with pytest.raises(PeerStateError) as error:
        from_alice(2, state=state)
    assert error.value.fault is PeerFault.MALFORMED


def test_a_final_state_of_another_shape_is_refused() -> None:
    not_final = State(FIXED, b"", FINAL.outcome, 2, False)
    late = State(FIXED, b"", FINAL.outcome, 3, True)
    for state in (not_final, late):
        with pytest.raises(PeerStateError) as error:
            from_alice(2, state=state)
        assert error.value.fault is PeerFault.WRONG_TURN
    token = State(FIXED, b"", (simple_exit(TOKEN, [(ALICE, 6), (BOB, 6)]),), 2, True)
    with pytest.raises(PeerStateError) as other_asset:
        from_alice(2, state=token)
    assert other_asset.value.fault is PeerFault.MALFORMED
    by_irene = StateReceived(IRENE.address, signed_by(FINAL, [IRENE]))
    with pytest.raises(PeerStateError, match="payer's signature is missing"):
        virtual_defund_from_final(OPEN, BOB.address, by_irene)


def test_update_refuses_forgeries_strangers_and_transactions() -> None:
    forged = SignedState(FINAL, {0: IVAN.sign_state(FINAL)})
    with pytest.raises(PeerStateError) as error:
        update_virtual_defund(alice(), StateReceived(IRENE.address, forged))
    assert error.value.fault is PeerFault.NOT_A_PARTICIPANT
    stranger = StateReceived(IVAN.address, signed_by(FINAL, [IRENE]))
    with pytest.raises(PeerStateError) as by_stranger:
        update_virtual_defund(alice(), stranger)
    assert by_stranger.value.fault is PeerFault.NOT_A_PARTICIPANT
    other = State(FIXED, b"", virtual_outcome(PATH, 5, 7), 2, True)
    with pytest.raises(PeerStateError) as wrong:
        update_virtual_defund(alice(), StateReceived(IRENE.address, signed_by(other, [IRENE])))
    assert wrong.value.fault is PeerFault.MALFORMED
    with pytest.raises(ProtocolError, match="no transaction"):
        update_virtual_defund(
            alice(), TransactionSubmitted(TransactionKind.CONCLUDE_AND_TRANSFER, V)
        )


def test_crank_needs_the_ledgers_next_to_us() -> None:
    with pytest.raises(ProtocolError, match="left_ledger"):
        crank_virtual_defund(from_alice(1), ObjectiveView(CLOSED, None, IB_IRENE), IRENE)
    with pytest.raises(ProtocolError, match="signer"):
        crank_virtual_defund(alice(), snap(0, CLOSED), IRENE)
