"""The watchtower's pure parts: what a client hands over, what a tower accepts and
keeps, and how a guard answers a stale challenge."""

from __future__ import annotations

import dataclasses

import pytest

from node.core import SignedState, State, Voucher, channel_id
from node.core.errors import PeerFault, PeerStateError
from node.protocols import (
    ChannelSnapshot,
    DefendWaitingFor,
    Guard,
    ObjectiveView,
    SubmitChallenge,
    SubmitCheckpoint,
    TransactionKind,
    TransactionSubmitted,
    WatchedChannel,
    WatchRequest,
    check_watch_request,
    crank_guard,
    replaces,
    stale_answer,
    update_guard,
    watch_request_for,
)
from tests.protocols.protocols_fakes import ALICE, BOB, IRENE, NATIVE, ledger_fixed, simple_exit
from tests.protocols.protocols_virtual_fakes import (
    PATHS,
    PAYMENT_APP,
    setup_state,
    signed_by,
    virtual_fixed,
    virtual_outcome,
)

LEDGER = ledger_fixed()
LEDGER_ID = channel_id(LEDGER)


def ledger_at(turn: int, alice: int = 5, bob: int = 5, *, final: bool = False) -> SignedState:
    outcome = (simple_exit(NATIVE, [(ALICE, alice), (BOB, bob)]),)
    return signed_by(State(LEDGER, b"", outcome, turn, final), (ALICE, BOB))


POSTFUND = ledger_at(1)
LATEST = ledger_at(4, 2, 8)

V_PATH = PATHS[0]  # Alice pays Bob directly
V_FIXED = virtual_fixed(V_PATH)
V_ID = channel_id(V_FIXED)
V_POSTFUND = signed_by(setup_state(V_FIXED, virtual_outcome(V_PATH), 1), V_PATH)


def voucher(amount: int) -> Voucher:
    return Voucher(V_ID, amount, ALICE.sign_voucher(V_ID, amount))


def v_snapshot(supported: SignedState = V_POSTFUND) -> ChannelSnapshot:
    return ChannelSnapshot(V_FIXED, (supported, supported), supported)


def bobs_counter(amount: int) -> WatchRequest:
    request = watch_request_for(v_snapshot(), BOB, PAYMENT_APP, voucher(amount))
    assert request is not None
    assert request.counter is not None
    return request


# ---------------------------------------------------------------------- what a client hands over


def test_a_ledger_hands_over_its_latest_supported_state() -> None:
    snapshot = ChannelSnapshot(LEDGER, (LATEST, LATEST), LATEST)
    assert watch_request_for(snapshot, ALICE, PAYMENT_APP, None) == WatchRequest(LATEST)


def test_nothing_supported_or_not_ours_hands_nothing_over() -> None:
    assert watch_request_for(ChannelSnapshot(LEDGER), ALICE, PAYMENT_APP, None) is None
    snapshot = ChannelSnapshot(LEDGER, (LATEST, LATEST), LATEST)
    assert watch_request_for(snapshot, IRENE, PAYMENT_APP, None) is None


def test_a_closed_channel_is_released() -> None:
    final = ledger_at(5, 2, 8, final=True)
    snapshot = ChannelSnapshot(LEDGER, (final, final), final)
    assert watch_request_for(snapshot, ALICE, PAYMENT_APP, None) == WatchRequest(
        final, release=True
    )


def test_the_payee_hands_over_a_counter_challenge_with_its_largest_voucher() -> None:
    request = bobs_counter(3)
    counter = request.counter
    assert counter is not None
    assert request.supported == V_POSTFUND
    assert counter.proof == (V_POSTFUND,)
    assert counter.candidate.state.turn_num == 2
    assert counter.candidate.signer_indices == frozenset({1})
    assert counter.candidate.state.outcome[0].allocations[1].amount == 2 + 3
    check_watch_request(request, BOB.address)


def test_the_payer_and_an_unpaid_payee_hand_over_the_postfund_only() -> None:
    assert watch_request_for(v_snapshot(), ALICE, PAYMENT_APP, voucher(3)) == WatchRequest(
        V_POSTFUND
    )
    assert watch_request_for(v_snapshot(), BOB, PAYMENT_APP, None) == WatchRequest(V_POSTFUND)


# ---------------------------------------------------------------------- what a tower accepts


def test_a_tower_accepts_a_request_of_a_participant_with_every_signature() -> None:
    check_watch_request(WatchRequest(LATEST), ALICE.address)
    check_watch_request(WatchRequest(LATEST), BOB.address)


@pytest.mark.parametrize(
    ("request_", "client", "fault", "match"),
    [
        (WatchRequest(LATEST), IRENE.address, PeerFault.NOT_A_PARTICIPANT, "not a participant"),
        (
            WatchRequest(signed_by(LATEST.state, (ALICE,))),
            ALICE.address,
            PeerFault.BAD_SIGNATURE,
            "every participant",
        ),
        (
            # Bob's signature at Alice's index.
            WatchRequest(
                SignedState(
                    LATEST.state,
                    {0: BOB.sign_state(LATEST.state), 1: BOB.sign_state(LATEST.state)},
                )
            ),
            ALICE.address,
            PeerFault.BAD_SIGNATURE,
            "supported",
        ),
        (
            WatchRequest(ledger_at(5, final=True)),
            ALICE.address,
            PeerFault.MALFORMED,
            "final",
        ),
    ],
)
def test_a_tower_refuses_what_it_could_not_use(
    request_: WatchRequest, client: str, fault: PeerFault, match: str
) -> None:
    with pytest.raises(PeerStateError, match=match) as caught:
        check_watch_request(request_, client)
    assert caught.value.fault is fault


def test_a_forged_counter_challenge_is_refused() -> None:
    good = bobs_counter(3)
    counter = good.counter
    assert counter is not None
    candidate = counter.candidate
    cases = [
        # Someone else's counter: the tower would answer for Alice with Bob's signature.
        (good, ALICE.address, PeerFault.BAD_SIGNATURE),
        # The challenge signature by the payer.
        (
            dataclasses.replace(
                good,
                counter=dataclasses.replace(
                    counter, signature=ALICE.sign_challenge(candidate.state)
                ),
            ),
            BOB.address,
            PeerFault.BAD_SIGNATURE,
        ),
        # Not later than the supported state.
        (
            dataclasses.replace(
                good, counter=SubmitChallenge(V_POSTFUND, (V_POSTFUND,), counter.signature)
            ),
            BOB.address,
            PeerFault.WRONG_TURN,
        ),
        # Proved by something else.
        (
            dataclasses.replace(good, counter=dataclasses.replace(counter, proof=())),
            BOB.address,
            PeerFault.MALFORMED,
        ),
    ]
    for request, client, fault in cases:
        with pytest.raises(PeerStateError) as caught:
            check_watch_request(request, client)
        assert caught.value.fault is fault, request


def test_an_older_supported_state_does_not_replace_a_newer_one() -> None:
    assert replaces(WatchRequest(LATEST), WatchRequest(POSTFUND))
    assert replaces(WatchRequest(LATEST), WatchRequest(LATEST))
    assert not replaces(WatchRequest(POSTFUND), WatchRequest(LATEST))
    assert replaces(bobs_counter(1), bobs_counter(3))  # a client's own choice


def test_a_watched_channel_keeps_one_request_per_client() -> None:
    watched = WatchedChannel(((ALICE.address, WatchRequest(POSTFUND)),))
    both = watched.with_request(BOB.address, WatchRequest(LATEST))
    assert [client for client, _ in both.requests] == sorted([ALICE.address, BOB.address])
    again = both.with_request(ALICE.address, WatchRequest(LATEST))
    assert again.request_of(ALICE.address) == WatchRequest(LATEST)
    assert len(again.requests) == 2
    alone = again.without(BOB.address)
    assert alone is not None
    assert alone.request_of(BOB.address) is None
    assert alone.without(ALICE.address) is None
    challenged = dataclasses.replace(alone, challenge_turn=1, finalizes_at=99, event_block=7)
    assert challenged.forget_chain() == alone


# ---------------------------------------------------------------------- how a guard answers


def challenged(requests: WatchedChannel, turn: int, finalizes_at: int = 1_000) -> WatchedChannel:
    return dataclasses.replace(requests, challenge_turn=turn, finalizes_at=finalizes_at)


def test_a_stale_ledger_challenge_is_answered_with_a_checkpoint() -> None:
    watched = WatchedChannel(((ALICE.address, WatchRequest(LATEST)),))
    assert stale_answer(challenged(watched, 1)) == SubmitCheckpoint(LATEST, ())
    assert stale_answer(challenged(watched, 4)) is None  # our own latest: not stale
    assert stale_answer(watched) is None  # nothing registered
    concluded = dataclasses.replace(challenged(watched, 1), concluded=True)
    assert stale_answer(concluded) is None


def test_the_latest_state_of_any_client_answers() -> None:
    watched = WatchedChannel(
        ((ALICE.address, WatchRequest(POSTFUND)), (BOB.address, WatchRequest(LATEST)))
    )
    assert stale_answer(challenged(watched, 2)) == SubmitCheckpoint(LATEST, ())


def test_a_postfund_challenge_of_a_payment_channel_gets_the_payees_counter() -> None:
    request = bobs_counter(3)
    watched = WatchedChannel(((ALICE.address, WatchRequest(V_POSTFUND)), (BOB.address, request)))
    assert stale_answer(challenged(watched, 1)) == request.counter
    assert stale_answer(challenged(watched, 0)) == request.counter
    assert stale_answer(challenged(watched, 2)) is None  # the redemption is registered


def test_a_guard_submits_its_answer_once_and_ends_when_answered() -> None:
    watched = challenged(WatchedChannel(((ALICE.address, WatchRequest(LATEST)),)), 1)
    guard = Guard(LEDGER)
    view = ObjectiveView(ChannelSnapshot(LEDGER), watched=watched, chain_time_s=500)
    first = crank_guard(guard, view)
    assert first.effects == (SubmitCheckpoint(LATEST, ()),)
    assert first.waiting_for is DefendWaitingFor.CLEARED
    sent = update_guard(guard, TransactionSubmitted(TransactionKind.CHECKPOINT, LEDGER_ID))
    again = crank_guard(sent, view)
    assert again.effects == ()
    assert again.waiting_for is DefendWaitingFor.CLEARED
    cleared = dataclasses.replace(watched, challenge_turn=None, finalizes_at=0)
    done = crank_guard(sent, dataclasses.replace(view, watched=cleared))
    assert done.done
    assert done.effects == ()


def test_a_guard_gives_up_once_the_challenge_finalized_or_nothing_is_watched() -> None:
    watched = challenged(WatchedChannel(((ALICE.address, WatchRequest(LATEST)),)), 1, 500)
    guard = Guard(LEDGER)
    late = ObjectiveView(ChannelSnapshot(LEDGER), watched=watched, chain_time_s=500)
    assert crank_guard(guard, late).done
    assert crank_guard(guard, ObjectiveView(ChannelSnapshot(LEDGER))).done
