"""DirectDefund: each pause point for both participants, idempotence, restart, error paths."""

from __future__ import annotations

import pytest

from node.core import Guarantee, SignedState, SingleAssetExit, State, address_to_destination
from node.core import channel_id as channel_id_of
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols import (
    ChannelSnapshot,
    DirectDefund,
    DirectDefundWaitingFor,
    ObjectiveId,
    ObjectiveKind,
    SendSignedState,
    StateReceived,
    SubmitConcludeAndTransfer,
    TransactionFailed,
    TransactionKind,
    TransactionSubmitted,
    crank_direct_defund,
    direct_defund_from_final,
    new_direct_defund,
    update_direct_defund,
)
from tests.protocols.protocols_fakes import (
    ALICE,
    BOB,
    IRENE,
    NATIVE,
    TOKEN,
    ledger_fixed,
    simple_exit,
)

W = DirectDefundWaitingFor
FIXED = ledger_fixed()
CHANNEL = channel_id_of(FIXED)
OUTCOME = (
    simple_exit(NATIVE, [(ALICE, 5), (BOB, 3)]),
    simple_exit(TOKEN, [(ALICE, 0), (BOB, 4)]),
)
HOLDINGS = {NATIVE: 8, TOKEN: 4}
SIGNERS = (ALICE, BOB)


def signed(state: State, *indices: int) -> SignedState:
    return SignedState(state, {i: SIGNERS[i].sign_state(state) for i in indices})


POSTFUND = signed(State(FIXED, b"", OUTCOME, 1, False), 0, 1)
FINAL = State(FIXED, b"", OUTCOME, 2, True)
FINAL_BOTH = signed(FINAL, 0, 1)
OPEN = ChannelSnapshot(FIXED, (POSTFUND, POSTFUND), POSTFUND, HOLDINGS)
FINALIZED = ChannelSnapshot(FIXED, (FINAL_BOTH, FINAL_BOTH), FINAL_BOTH, HOLDINGS)
PAID_OUT = ChannelSnapshot(FIXED, (FINAL_BOTH, FINAL_BOTH), FINAL_BOTH, {NATIVE: 0, TOKEN: 0})


def objective_of(index: int) -> DirectDefund:
    return new_direct_defund(OPEN, SIGNERS[index].address)


def test_final_state_is_the_supported_outcome_at_the_next_turn() -> None:
    objective = objective_of(0)
    assert objective.final_state == FINAL
    assert objective.id == ObjectiveId(ObjectiveKind.DIRECT_DEFUND, CHANNEL)
    assert str(objective.id).startswith("DirectDefunding-0x")


def test_alice_signs_and_sends_the_final_state() -> None:
    result = crank_direct_defund(objective_of(0), OPEN, ALICE)
    assert result.waiting_for is W.FINALIZATION
    assert result.effects == (SendSignedState(BOB.address, objective_of(0).id, signed(FINAL, 0)),)


def test_bob_takes_the_objective_from_alices_final_state_and_countersigns() -> None:
    alices = signed(FINAL, 0)
    bob = direct_defund_from_final(OPEN, BOB.address, StateReceived(ALICE.address, alices))
    assert bob == objective_of(1)
    view = ChannelSnapshot(FIXED, (alices, POSTFUND), POSTFUND, HOLDINGS)
    result = crank_direct_defund(bob, view, BOB)
    assert result.waiting_for is W.FINALIZATION
    assert result.effects == (SendSignedState(ALICE.address, bob.id, FINAL_BOTH),)


def test_waits_for_the_counterpartys_signature() -> None:
    view = ChannelSnapshot(FIXED, (signed(FINAL, 0), POSTFUND), POSTFUND, HOLDINGS)
    result = crank_direct_defund(objective_of(0), view, ALICE)
    assert result.effects == ()
    assert result.waiting_for is W.FINALIZATION


def test_participant_0_concludes_once_the_final_state_is_supported() -> None:
    result = crank_direct_defund(objective_of(0), FINALIZED, ALICE)
    assert result.effects == (SubmitConcludeAndTransfer(FINAL_BOTH),)
    assert result.waiting_for is W.WITHDRAW


def test_participant_1_only_waits_for_the_payout() -> None:
    result = crank_direct_defund(objective_of(1), FINALIZED, BOB)
    assert result.effects == ()
    assert result.waiting_for is W.WITHDRAW


def test_a_submitted_conclusion_is_not_asked_for_again() -> None:
    submitted = update_direct_defund(
        objective_of(0), TransactionSubmitted(TransactionKind.CONCLUDE_AND_TRANSFER, CHANNEL)
    )
    assert submitted.conclude_submitted
    result = crank_direct_defund(submitted, FINALIZED, ALICE)
    assert result.effects == ()
    assert result.waiting_for is W.WITHDRAW


def test_a_refused_conclusion_is_asked_for_again() -> None:
    submitted = update_direct_defund(
        objective_of(0), TransactionSubmitted(TransactionKind.CONCLUDE_AND_TRANSFER, CHANNEL)
    )
    failed = update_direct_defund(
        submitted, TransactionFailed(TransactionKind.CONCLUDE_AND_TRANSFER, CHANNEL)
    )
    assert failed == objective_of(0)
    result = crank_direct_defund(failed, FINALIZED, ALICE)
    assert result.effects == (SubmitConcludeAndTransfer(FINAL_BOTH),)


def test_done_once_every_holding_is_zero() -> None:
    for index in (0, 1):
        result = crank_direct_defund(objective_of(index), PAID_OUT, SIGNERS[index])
        assert result.effects == ()
        assert result.waiting_for is W.DONE
        assert result.done


def test_a_close_a_finalized_challenge_overtook_fails() -> None:
    # Found by tests/sim (seed 2040): one party settles the ledger on chain while the
    # other asks to close it; the challenge finalizes and no final state can conclude.
    challenged = ChannelSnapshot(
        FIXED, (POSTFUND, POSTFUND), POSTFUND, HOLDINGS, 100, challenge=POSTFUND
    )
    for index in (0, 1):
        waiting = crank_direct_defund(objective_of(index), challenged, SIGNERS[index], 99)
        assert waiting.waiting_for is W.FINALIZATION
        with pytest.raises(ProtocolError, match="finalized on chain through a challenge"):
            crank_direct_defund(objective_of(index), challenged, SIGNERS[index], 100)


def test_a_close_concluded_with_its_final_state_is_not_failed() -> None:
    concluded = ChannelSnapshot(
        FIXED, (FINAL_BOTH, FINAL_BOTH), FINAL_BOTH, {NATIVE: 0, TOKEN: 0}, 100, concluded=True
    )
    for index in (0, 1):
        result = crank_direct_defund(objective_of(index), concluded, SIGNERS[index], 200)
        assert result.waiting_for is W.DONE


def test_a_close_concluded_before_the_others_signature_arrived_is_done() -> None:
    # Seen under load in test_sigkill_during_defunding: Alice concluded on chain with the
    # final state both signed and crashed before her signature reached Bob. Bob's view
    # holds only his own signature on it, and the conclusion has paid everyone out.
    only_bobs = signed(FINAL, 1)
    concluded = ChannelSnapshot(
        FIXED, (POSTFUND, only_bobs), POSTFUND, {NATIVE: 0, TOKEN: 0}, 100, concluded=True
    )
    result = crank_direct_defund(objective_of(1), concluded, BOB, 200)
    assert result.waiting_for is W.DONE
    assert result.effects == ()
    # Concluded, not yet paid out: it waits (the conclusion transfers in the same call).
    unpaid = ChannelSnapshot(FIXED, (POSTFUND, only_bobs), POSTFUND, HOLDINGS, 100, concluded=True)
    assert crank_direct_defund(objective_of(1), unpaid, BOB, 200).waiting_for is W.FINALIZATION
    # Without our own signature on the final state, a conclusion is not known to be ours.
    unsigned = ChannelSnapshot(
        FIXED, (POSTFUND, POSTFUND), POSTFUND, {NATIVE: 0, TOKEN: 0}, 100, concluded=True
    )
    with pytest.raises(ProtocolError, match="finalized on chain"):
        crank_direct_defund(objective_of(1), unsigned, BOB, 200)


@pytest.mark.parametrize(
    "view",
    [
        OPEN,
        ChannelSnapshot(FIXED, (signed(FINAL, 0), POSTFUND), POSTFUND, HOLDINGS),
        FINALIZED,
        PAID_OUT,
    ],
)
def test_crank_is_idempotent(view: ChannelSnapshot) -> None:
    for index in (0, 1):
        first = crank_direct_defund(objective_of(index), view, SIGNERS[index])
        assert crank_direct_defund(first.objective, view, SIGNERS[index]) == first


@pytest.mark.parametrize(
    "later",
    [
        ChannelSnapshot(FIXED, (signed(FINAL, 0), POSTFUND), POSTFUND, HOLDINGS),
        FINALIZED,
        PAID_OUT,
    ],
)
def test_rebuilding_from_a_later_snapshot_gives_the_same_objective(
    later: ChannelSnapshot,
) -> None:
    for index in (0, 1):
        assert new_direct_defund(later, SIGNERS[index].address) == objective_of(index)


# Error paths


def ledger_with_guarantee() -> ChannelSnapshot:
    target = channel_id_of(ledger_fixed(nonce=99))
    left = address_to_destination(ALICE.address)
    right = address_to_destination(BOB.address)
    exit_ = SingleAssetExit(
        NATIVE,
        [
            *simple_exit(NATIVE, [(ALICE, 4), (BOB, 2)]).allocations,
            Guarantee(target, 2, left, right).to_allocation(),
        ],
    )
    state = signed(State(FIXED, b"", (exit_,), 5, False), 0, 1)
    return ChannelSnapshot(FIXED, (state, state), state, {NATIVE: 8})


def test_defund_with_guarantees_outstanding_is_refused() -> None:
    with pytest.raises(ProtocolError, match="still guarantees 1 channel") as caught:
        new_direct_defund(ledger_with_guarantee(), ALICE.address)
    target = channel_id_of(ledger_fixed(nonce=99))
    assert target.hex() in str(caught.value)


def test_defund_of_a_channel_with_no_supported_state_is_refused() -> None:
    with pytest.raises(ProtocolError, match="no supported state"):
        new_direct_defund(ChannelSnapshot(FIXED), ALICE.address)


def test_defund_by_a_non_participant_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not a participant"):
        new_direct_defund(OPEN, IRENE.address)


def fault_of(event: StateReceived) -> PeerFault:
    with pytest.raises(PeerStateError) as caught:
        direct_defund_from_final(OPEN, BOB.address, event)
    return caught.value.fault


def test_a_final_state_from_a_non_participant_is_refused() -> None:
    assert fault_of(StateReceived(IRENE.address, signed(FINAL, 0))) is PeerFault.NOT_A_PARTICIPANT


def test_a_final_state_from_the_wrong_participant_is_refused() -> None:
    # Alice sends a final state that only Bob signed: not hers to send.
    assert fault_of(StateReceived(ALICE.address, signed(FINAL, 1))) is PeerFault.MALFORMED
    # A state that claims to come from ourselves.
    assert fault_of(StateReceived(BOB.address, signed(FINAL, 0))) is PeerFault.MALFORMED


def test_a_final_state_signed_by_a_stranger_is_refused() -> None:
    strangers = SignedState(FINAL, {0: IRENE.sign_state(FINAL)})
    assert fault_of(StateReceived(ALICE.address, strangers)) is PeerFault.NOT_A_PARTICIPANT


def test_a_non_final_state_does_not_start_a_defund() -> None:
    not_final = signed(State(FIXED, b"", OUTCOME, 2, False), 0)
    assert fault_of(StateReceived(ALICE.address, not_final)) is PeerFault.MALFORMED


@pytest.mark.parametrize("turn", [1, 3, 7])
def test_a_final_state_of_the_wrong_turn_is_refused(turn: int) -> None:
    wrong = signed(State(FIXED, b"", OUTCOME, turn, True), 0)
    assert fault_of(StateReceived(ALICE.address, wrong)) is PeerFault.WRONG_TURN


def test_a_final_state_with_another_outcome_is_refused() -> None:
    greedy = (simple_exit(NATIVE, [(ALICE, 8), (BOB, 0)]), OUTCOME[1])
    wrong = signed(State(FIXED, b"", greedy, 2, True), 0)
    assert fault_of(StateReceived(ALICE.address, wrong)) is PeerFault.MALFORMED


def test_a_final_state_of_another_channel_is_refused() -> None:
    other = State(ledger_fixed(nonce=8), b"", OUTCOME, 2, True)
    event = StateReceived(ALICE.address, SignedState(other, {0: ALICE.sign_state(other)}))
    with pytest.raises(PeerStateError) as caught:
        update_direct_defund(objective_of(1), event)
    assert caught.value.fault is PeerFault.UNKNOWN_CHANNEL


def test_a_deposit_record_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not a conclusion"):
        update_direct_defund(
            objective_of(0), TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL, NATIVE)
        )


def test_crank_refuses_a_foreign_snapshot_or_signer() -> None:
    with pytest.raises(ProtocolError, match="snapshot"):
        crank_direct_defund(objective_of(0), ChannelSnapshot(ledger_fixed(nonce=8)), ALICE)
    with pytest.raises(ProtocolError, match="signer"):
        crank_direct_defund(objective_of(0), OPEN, IRENE)
