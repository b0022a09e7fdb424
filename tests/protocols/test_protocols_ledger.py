"""The consensus (ledger) channel: outcomes, leader and follower, ordering and re-sending."""

from __future__ import annotations

import dataclasses

import pytest

from node.core import (
    Allocation,
    SignedState,
    SingleAssetExit,
    State,
    constants,
    state_from_proto,
    state_to_proto,
    verify_signed_state,
)
from node.core.errors import PeerFault, PeerStateError, ProtocolError
from node.protocols import (
    Balance,
    LedgerChannel,
    LedgerOutcome,
    ProposeLedgerUpdate,
    SignedProposal,
    apply_proposal,
    apply_queued,
    ledger_next_to_sign,
    ledger_outcome_from_exit,
    ledger_propose,
    ledger_receive,
    ledger_sign_next,
    ledger_unacknowledged,
    new_ledger_channel,
)
from node.protocols._virtual import ledger_step
from tests.protocols.protocols_fakes import (
    ALICE,
    BOB,
    IRENE,
    NATIVE,
    TOKEN,
    ledger_fixed,
    simple_exit,
)
from tests.protocols.protocols_ledger_fixtures import (
    ALICE_DESTINATION,
    BOB_DESTINATION,
    FIXED,
    LEDGER,
    POSTFUND,
    add,
    ledgers,
    remove,
    target,
)

START = LedgerOutcome(NATIVE, Balance(ALICE_DESTINATION, 10), Balance(BOB_DESTINATION, 10))


# Outcomes


def test_add_debits_left_and_right_and_keeps_guarantees_sorted() -> None:
    first, second = sorted([1, 2], key=target, reverse=True)
    after = apply_proposal(apply_proposal(START, add(first, 5, 2)), add(second, 4, 1, False))
    # Alice pays 2 (left of the first) and 3 (right of the second); Bob 3 and 1.
    assert after.leader == Balance(ALICE_DESTINATION, 5)
    assert after.follower == Balance(BOB_DESTINATION, 6)
    assert [g.target for g in after.guarantees] == sorted([target(1), target(2)])
    (asset_exit,) = after.to_exit()
    assert [a.allocation_type for a in asset_exit.allocations] == [0, 0, 2, 2]
    assert [a.destination for a in asset_exit.allocations[:2]] == [
        ALICE_DESTINATION,
        BOB_DESTINATION,
    ]
    assert ledger_outcome_from_exit(FIXED, after.to_exit()) == after


def test_remove_pays_the_guarantee_back() -> None:
    locked = apply_proposal(START, add(1, 6, 4))
    after = apply_proposal(locked, remove(1, 1))
    assert after == LedgerOutcome(
        NATIVE, Balance(ALICE_DESTINATION, 7), Balance(BOB_DESTINATION, 13)
    )
    mirrored = apply_proposal(apply_proposal(START, add(1, 6, 4, False)), remove(1, 1))
    assert mirrored.leader.amount == 13
    assert mirrored.follower.amount == 7


@pytest.mark.parametrize(
    ("proposals", "problem"),
    [
        ([add(1, 2, 1), add(1, 2, 1)], "guaranteed already"),
        ([remove(1, 0)], "no guarantee"),
        ([add(1, 2, 3)], "left deposit"),
        ([add(1, 12, 1)], "cannot afford"),
        ([add(1, 12, 11)], "cannot afford"),
        ([add(1, 4, 2), remove(1, 5)], "left amount"),
    ],
)
def test_proposals_that_do_not_fit_are_refused(proposals: list[object], problem: str) -> None:
    outcome = START
    for proposal in proposals[:-1]:
        outcome = apply_proposal(outcome, proposal)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match=problem):
        apply_proposal(outcome, proposals[-1])  # type: ignore[arg-type]


def test_a_guarantee_between_other_parties_is_refused() -> None:
    stranger = dataclasses.replace(
        add(1, 2, 1), guarantee=dataclasses.replace(add(1, 2, 1).guarantee, right=ALICE_DESTINATION)
    )
    with pytest.raises(ProtocolError, match="two parties"):
        apply_proposal(START, stranger)


def test_the_number_of_guarantees_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "ledger_guarantees_max", 1)
    with pytest.raises(ProtocolError, match="guarantees at most"):
        apply_proposal(apply_proposal(START, add(1, 1, 1)), add(2, 1, 1))


@pytest.mark.parametrize(
    ("outcome", "problem"),
    [
        ((), "one asset"),
        ((simple_exit(NATIVE, [(ALICE, 1), (BOB, 1)]),) * 2, "one asset"),
        ((simple_exit(NATIVE, [(BOB, 1), (ALICE, 1)]),), "leader's then the follower's"),
        ((simple_exit(NATIVE, [(ALICE, 1)]),), "leader's then the follower's"),
        (
            (
                SingleAssetExit(
                    NATIVE,
                    [Allocation(ALICE_DESTINATION, 1, 0, b"x"), Allocation(BOB_DESTINATION, 1)],
                ),
            ),
            "simple",
        ),
        (
            (SingleAssetExit(TOKEN, simple_exit(TOKEN, [(ALICE, 1), (BOB, 1)]).allocations, 1),),
            "metadata",
        ),
    ],
)
def test_non_canonical_ledger_outcomes_are_refused(
    outcome: tuple[SingleAssetExit, ...], problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        ledger_outcome_from_exit(FIXED, outcome)


def test_unsorted_guarantees_are_refused() -> None:
    after = apply_proposal(apply_proposal(START, add(1, 1, 1)), add(2, 1, 1))
    (asset_exit,) = after.to_exit()
    swapped = (*asset_exit.allocations[:2], *reversed(asset_exit.allocations[2:]))
    with pytest.raises(ProtocolError, match="sorted"):
        ledger_outcome_from_exit(FIXED, (SingleAssetExit(NATIVE, swapped),))


def test_new_ledger_channel_checks_the_supported_state() -> None:
    alice, bob = ledgers()
    assert alice.is_leader
    assert not bob.is_leader
    assert alice.id == bob.id == LEDGER
    assert alice.consensus() == POSTFUND
    with pytest.raises(ProtocolError, match="both parties"):
        new_ledger_channel(SignedState(POSTFUND.state, POSTFUND.signatures[:1]), ALICE.address)
    with pytest.raises(ProtocolError, match="not a participant"):
        new_ledger_channel(POSTFUND, IRENE.address)
    three = State(ledger_fixed(participants=(ALICE, BOB, IRENE)), b"", (), 1, False)
    with pytest.raises(ProtocolError, match="a ledger has 2"):
        new_ledger_channel(SignedState(three), ALICE.address)
    final = State(FIXED, b"", POSTFUND.state.outcome, 2, True)
    signed_final = SignedState(final, {0: ALICE.sign_state(final), 1: BOB.sign_state(final)})
    with pytest.raises(ProtocolError, match="not final"):
        new_ledger_channel(signed_final, ALICE.address)


# Leader and follower


def exchange(
    alice: LedgerChannel, bob: LedgerChannel, proposal: object
) -> tuple[LedgerChannel, LedgerChannel]:
    alice, signed = ledger_propose(alice, proposal, ALICE)  # type: ignore[arg-type]
    bob = ledger_receive(bob, signed)
    assert ledger_next_to_sign(bob) == signed
    bob, answer = ledger_sign_next(bob, signed.proposal, BOB)
    return ledger_receive(alice, answer), bob


def test_a_proposal_countersigned_becomes_the_consensus_on_both_sides() -> None:
    alice, bob = exchange(*ledgers(), add(1, 6, 4))
    assert alice.turn_num == bob.turn_num == 2
    assert alice.consensus() == bob.consensus()
    verify_signed_state(alice.consensus())
    assert alice.includes(target(1))
    assert ledger_unacknowledged(alice) == ()
    alice, bob = exchange(alice, bob, remove(1, 4))
    assert alice.turn_num == bob.turn_num == 3
    assert alice.outcome == bob.outcome == START


def test_the_follower_buffers_proposals_that_arrive_early() -> None:
    alice, bob = ledgers()
    sent = []
    for proposal in (add(1, 1, 1), add(2, 2, 1), add(3, 3, 0)):
        alice, signed = ledger_propose(alice, proposal, ALICE)
        sent.append(signed)
    assert ledger_unacknowledged(alice) == tuple(sent)
    bob = ledger_receive(bob, sent[2])
    bob = ledger_receive(bob, sent[1])
    assert bob.queue == ()
    assert [s.turn_num for s in bob.buffered] == [3, 4]
    bob = ledger_receive(bob, sent[0])
    assert [queued.signed for queued in bob.queue] == sent
    assert bob.buffered == ()
    # Countersign all three; the last answer alone acknowledges every one.
    answers = []
    for signed in sent:
        bob, answer = ledger_sign_next(bob, signed.proposal, BOB)
        answers.append(answer)
    alice = ledger_receive(alice, answers[-1])
    assert alice.turn_num == 4
    assert ledger_unacknowledged(alice) == ()
    assert alice.consensus() == bob.consensus()
    assert ledger_receive(alice, answers[0]) == alice


def test_the_follower_takes_buffered_proposals_as_each_gap_fills() -> None:
    alice, bob = ledgers()
    sent = []
    for number in range(1, 5):
        alice, signed = ledger_propose(alice, add(number, 1, 1), ALICE)
        sent.append(signed)
    for index in (3, 1, 0):
        bob = ledger_receive(bob, sent[index])
    assert [queued.signed for queued in bob.queue] == sent[:2]
    assert bob.buffered == (sent[3],)
    bob = ledger_receive(bob, sent[2])
    assert [queued.signed for queued in bob.queue] == sent
    assert bob.buffered == ()


def test_duplicates_change_nothing() -> None:
    alice, bob = ledgers()
    alice, first = ledger_propose(alice, add(1, 1, 1), ALICE)
    alice, second = ledger_propose(alice, add(2, 1, 1), ALICE)
    bob = ledger_receive(bob, second)
    assert ledger_receive(bob, second) == bob
    bob = ledger_receive(bob, first)
    assert ledger_receive(bob, first) == bob
    assert ledger_receive(bob, second) == bob


def test_a_lost_countersignature_is_answered_again() -> None:
    alice, bob = ledgers()
    alice, signed = ledger_propose(alice, add(1, 1, 1), ALICE)
    bob = ledger_receive(bob, signed)
    bob, _lost = ledger_sign_next(bob, signed.proposal, BOB)
    # The leader sends again what is unacknowledged; the follower has signed it already.
    (again,) = ledger_unacknowledged(alice)
    assert ledger_receive(bob, again) == bob
    assert bob.acknowledgement is not None
    alice = ledger_receive(alice, bob.acknowledgement)
    assert alice.consensus() == bob.consensus()


def test_a_forged_buffered_proposal_is_dropped_and_the_real_one_taken_later() -> None:
    alice, bob = ledgers()
    alice, first = ledger_propose(alice, add(1, 1, 1), ALICE)
    alice, second = ledger_propose(alice, add(2, 1, 1), ALICE)
    forged = dataclasses.replace(second, signature=IRENE.sign_state(POSTFUND.state))
    bob = ledger_receive(bob, forged)
    bob = ledger_receive(bob, first)
    assert [queued.signed for queued in bob.queue] == [first]
    assert bob.buffered == ()
    bob = ledger_receive(bob, second)
    assert [queued.signed for queued in bob.queue] == [first, second]


def test_the_follower_signs_only_the_expected_head() -> None:
    alice, bob = ledgers()
    alice, first = ledger_propose(alice, add(1, 1, 1), ALICE)
    alice, second = ledger_propose(alice, add(2, 1, 1), ALICE)
    bob = ledger_receive(ledger_receive(bob, first), second)
    with pytest.raises(ProtocolError, match="not the one expected"):
        ledger_sign_next(bob, second.proposal, BOB)
    with pytest.raises(ProtocolError, match="no proposal"):
        ledger_sign_next(ledgers()[1], first.proposal, BOB)
    with pytest.raises(ProtocolError, match="leader does not countersign"):
        ledger_sign_next(alice, first.proposal, ALICE)
    with pytest.raises(ProtocolError, match="only the leader"):
        ledger_propose(bob, add(3, 1, 1), BOB)
    with pytest.raises(ProtocolError, match="signer"):
        ledger_propose(alice, add(3, 1, 1), BOB)
    with pytest.raises(ProtocolError, match="signer"):
        ledger_sign_next(bob, first.proposal, ALICE)
    assert ledger_next_to_sign(alice) is None
    assert ledger_unacknowledged(bob) == ()


def fault_of(channel: LedgerChannel, signed: SignedProposal) -> PeerFault:
    with pytest.raises(PeerStateError) as caught:
        ledger_receive(channel, signed)
    return caught.value.fault


def test_the_follower_refuses_bad_proposals() -> None:
    alice, bob = ledgers()
    alice, signed = ledger_propose(alice, add(1, 1, 1), ALICE)
    assert fault_of(bob, dataclasses.replace(signed, ledger_id=target(9))) is (
        PeerFault.UNKNOWN_CHANNEL
    )
    by_bob = dataclasses.replace(signed, signature=BOB.sign_state(POSTFUND.state))
    assert fault_of(bob, by_bob) is PeerFault.BAD_SIGNATURE
    junk = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + bytes((27,))
    assert fault_of(bob, dataclasses.replace(signed, signature=junk)) is PeerFault.BAD_SIGNATURE
    too_big = dataclasses.replace(signed, proposal=add(1, 50, 1))
    assert fault_of(bob, too_big) is PeerFault.MALFORMED
    far = dataclasses.replace(signed, turn_num=2 + constants.ledger_proposals_buffered_max + 1)
    assert fault_of(bob, far) is PeerFault.WRONG_TURN
    # Two different proposals for one turn: queued, then buffered.
    bob = ledger_receive(bob, signed)
    _, other = ledger_propose(ledgers()[0], add(2, 1, 1), ALICE)
    assert fault_of(bob, other) is PeerFault.MALFORMED
    alice, _third = ledger_propose(alice, add(3, 1, 1), ALICE)
    alice, fourth = ledger_propose(alice, add(4, 1, 1), ALICE)
    bob = ledger_receive(bob, fourth)
    assert fault_of(bob, dataclasses.replace(fourth, proposal=add(5, 1, 1))) is (
        PeerFault.MALFORMED
    )


def test_the_leader_refuses_bad_countersignatures() -> None:
    alice, bob = ledgers()
    alice, signed = ledger_propose(alice, add(1, 1, 1), ALICE)
    bob = ledger_receive(bob, signed)
    _, answer = ledger_sign_next(bob, signed.proposal, BOB)
    assert fault_of(alice, dataclasses.replace(answer, turn_num=3)) is PeerFault.WRONG_TURN
    assert fault_of(alice, dataclasses.replace(answer, proposal=add(2, 1, 1))) is (
        PeerFault.MALFORMED
    )
    assert fault_of(alice, signed) is PeerFault.BAD_SIGNATURE  # the leader's own signature
    assert ledger_receive(alice, answer).turn_num == 2


def test_queues_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "ledger_proposals_queued_max", 1)
    alice, bob = ledgers()
    alice, first = ledger_propose(alice, add(1, 1, 1), ALICE)
    with pytest.raises(ProtocolError, match="await acknowledgement"):
        ledger_propose(alice, add(2, 1, 1), ALICE)
    monkeypatch.setattr(constants, "ledger_proposals_queued_max", 2)
    alice, second = ledger_propose(alice, add(2, 1, 1), ALICE)
    monkeypatch.setattr(constants, "ledger_proposals_queued_max", 1)
    bob = ledger_receive(bob, first)
    assert fault_of(bob, second) is PeerFault.MALFORMED


def test_a_leader_with_a_full_queue_waits_for_room_instead_of_proposing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(constants, "ledger_proposals_queued_max", 1)
    alice, bob = ledgers()
    alice, first = ledger_propose(alice, add(1, 1, 1), ALICE)
    assert ledger_step(alice, add(2, 1, 1)) == ((), False)  # no room: no effect, no failure
    bob = ledger_receive(bob, first)
    bob, answer = ledger_sign_next(bob, add(1, 1, 1), BOB)
    alice = ledger_receive(alice, answer)
    assert ledger_step(alice, add(2, 1, 1)) == (
        (ProposeLedgerUpdate(alice.id, add(2, 1, 1)),),
        False,
    )
    assert ledger_step(alice, add(1, 1, 1)) == ((), True)  # in the consensus already


def test_queued_proposals_are_found_in_the_queue() -> None:
    alice, _ = ledgers()
    alice, _ = ledger_propose(alice, add(1, 1, 1), ALICE)
    alice, _ = ledger_propose(alice, add(2, 1, 1), ALICE)
    assert alice.queues(add(1, 1, 1))
    assert alice.queues(add(2, 1, 1))
    assert not alice.queues(add(3, 1, 1))
    assert not alice.queues(add(1, 1, 0))  # another deposit: another proposal


def test_a_ledger_rebuilt_from_its_states_reuses_its_outcomes() -> None:
    """What the engine does after every step: the ledger again from its supported state
    and proposals. The same states come back, so their hashes are not computed again."""
    alice, bob = ledgers()
    alice, signed = ledger_propose(alice, add(1, 1, 1), ALICE)
    bob = ledger_receive(bob, signed)
    bob, answer = ledger_sign_next(bob, add(1, 1, 1), BOB)
    alice = ledger_receive(alice, answer)
    consensus = alice.consensus()
    decoded = state_from_proto(state_to_proto(consensus.state))  # as the view gives it
    assert decoded is consensus.state
    rebuilt = new_ledger_channel(SignedState(decoded, consensus.signatures), ALICE.address)
    assert rebuilt.outcome is alice.outcome
    assert apply_queued(rebuilt.outcome, add(2, 1, 1)) is apply_queued(alice.outcome, add(2, 1, 1))
    assert apply_proposal(alice.outcome, add(2, 1, 1)) is not apply_proposal(
        alice.outcome, add(2, 1, 1)
    )  # a check keeps nothing
    assert rebuilt == dataclasses.replace(alice, queue=())
