"""DirectFund: each pause point for both participants, idempotence, restart, error paths."""

from __future__ import annotations

import pytest

from node.core import (
    Allocation,
    Guarantee,
    SignedState,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
)
from node.core.errors import PeerFault, PeerProtocolError, PeerStateError, ProtocolError
from node.protocols import (
    ChannelSnapshot,
    DirectFund,
    DirectFundWaitingFor,
    Event,
    ObjectiveId,
    ObjectiveKind,
    SendSignedState,
    StateReceived,
    SubmitDeposit,
    TransactionFailed,
    TransactionKind,
    TransactionSubmitted,
    crank_direct_fund,
    direct_fund_from_prefund,
    new_direct_fund,
    update_direct_fund,
)
from tests.protocols.protocols_fakes import (
    ALICE,
    BOB,
    CONSENSUS_APP,
    IRENE,
    NATIVE,
    TOKEN,
    ledger_fixed,
    simple_exit,
)

W = DirectFundWaitingFor
FIXED = ledger_fixed()
CHANNEL = channel_id(FIXED)
# Native: Alice deposits first (5), then Bob (3). Token: Alice has 0, so Bob (4) may go at once.
OUTCOME = (
    simple_exit(NATIVE, [(ALICE, 5), (BOB, 3)]),
    simple_exit(TOKEN, [(ALICE, 0), (BOB, 4)]),
)


def objective_of(signer_index: int) -> DirectFund:
    me = (ALICE, BOB)[signer_index]
    return new_direct_fund(FIXED, OUTCOME, me.address, CONSENSUS_APP)


def state(turn: int) -> State:
    return State(FIXED, b"", OUTCOME, turn, False)


def signed(turn: int, *indices: int) -> SignedState:
    signers = (ALICE, BOB)
    return SignedState(state(turn), {i: signers[i].sign_state(state(turn)) for i in indices})


def snapshot(
    latest: tuple[SignedState | None, SignedState | None] = (None, None),
    supported: SignedState | None = None,
    holdings: dict[str, int] | None = None,
) -> ChannelSnapshot:
    return ChannelSnapshot(FIXED, latest, supported, holdings or {})


PREFUND_BOTH = signed(0, 0, 1)
POSTFUND_BOTH = signed(1, 0, 1)
PREFUND_DONE = snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH)


def test_id_is_kind_and_channel() -> None:
    assert objective_of(0).id == ObjectiveId(ObjectiveKind.DIRECT_FUND, CHANNEL)
    assert str(objective_of(1).id) == f"DirectFunding-0x{CHANNEL.hex()}"


def test_alice_signs_and_sends_the_prefund_first() -> None:
    result = crank_direct_fund(objective_of(0), snapshot(), ALICE)
    assert result.waiting_for is W.COMPLETE_PREFUND
    assert result.effects == (SendSignedState(BOB.address, objective_of(0).id, signed(0, 0)),)
    assert not result.done


def test_after_signing_the_prefund_nothing_is_sent_again() -> None:
    mine = signed(0, 0)
    result = crank_direct_fund(objective_of(0), snapshot((mine, None)), ALICE)
    assert result.waiting_for is W.COMPLETE_PREFUND
    assert result.effects == ()


def test_bob_countersigns_the_prefund_with_both_signatures() -> None:
    alices = signed(0, 0)
    result = crank_direct_fund(objective_of(1), snapshot((alices, None)), BOB)
    assert result.waiting_for is W.COMPLETE_PREFUND
    assert result.effects == (SendSignedState(ALICE.address, objective_of(1).id, PREFUND_BOTH),)


def test_first_depositor_deposits_once_the_prefund_is_complete() -> None:
    result = crank_direct_fund(objective_of(0), PREFUND_DONE, ALICE)
    # Alice's token allocation is 0: only the native deposit.
    assert result.effects == (SubmitDeposit(CHANNEL, NATIVE, 0, 5),)
    assert result.waiting_for is W.COMPLETE_FUNDING


def test_second_depositor_waits_for_its_turn_per_asset() -> None:
    result = crank_direct_fund(objective_of(1), PREFUND_DONE, BOB)
    # Bob is first in the token exit, second in the native one.
    assert result.effects == (SubmitDeposit(CHANNEL, TOKEN, 0, 4),)
    assert result.waiting_for is W.MY_TURN_TO_FUND


def test_second_depositor_tops_up_to_its_target_when_its_turn_comes() -> None:
    bob = update_direct_fund(
        objective_of(1), TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL, TOKEN)
    )
    partial = snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 6})
    result = crank_direct_fund(bob, partial, BOB)
    assert result.effects == (SubmitDeposit(CHANNEL, NATIVE, 6, 2),)
    assert result.waiting_for is W.COMPLETE_FUNDING


def test_a_submitted_deposit_is_never_asked_for_again() -> None:
    alice = update_direct_fund(
        objective_of(0), TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL, NATIVE)
    )
    assert alice.deposits_submitted == frozenset({NATIVE})
    for _ in range(3):
        result = crank_direct_fund(alice, PREFUND_DONE, ALICE)
        assert result.effects == ()
        assert result.waiting_for is W.COMPLETE_FUNDING


def test_a_refused_deposit_is_asked_for_again_on_fresh_holdings() -> None:
    submitted = TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL, NATIVE)
    alice = update_direct_fund(objective_of(0), submitted)
    # Someone put 1 in first, so the deposit expecting 0 reverted.
    failed = update_direct_fund(alice, TransactionFailed(TransactionKind.DEPOSIT, CHANNEL, NATIVE))
    assert failed.deposits_submitted == frozenset()
    view = snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 1})
    result = crank_direct_fund(failed, view, ALICE)
    assert result.effects == (SubmitDeposit(CHANNEL, NATIVE, 1, 4),)


def test_nothing_to_deposit_when_others_overfunded() -> None:
    overfunded = snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 5, TOKEN: 1})
    result = crank_direct_fund(objective_of(0), overfunded, ALICE)
    assert result.effects == ()
    assert result.waiting_for is W.COMPLETE_FUNDING


def test_both_sign_the_postfund_once_fully_funded() -> None:
    funded = snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 8, TOKEN: 4})
    for index, me, other in ((0, ALICE, BOB), (1, BOB, ALICE)):
        result = crank_direct_fund(objective_of(index), funded, me)
        assert result.waiting_for is W.COMPLETE_POSTFUND
        expected = signed(1, index)
        assert result.effects == (SendSignedState(other.address, objective_of(index).id, expected),)


def test_waits_for_the_counterpartys_postfund() -> None:
    mine = signed(1, 0)
    waiting = snapshot((mine, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 8, TOKEN: 4})
    result = crank_direct_fund(objective_of(0), waiting, ALICE)
    assert result.effects == ()
    assert result.waiting_for is W.COMPLETE_POSTFUND


def test_done_once_the_postfund_is_supported() -> None:
    done = snapshot((POSTFUND_BOTH, POSTFUND_BOTH), POSTFUND_BOTH, {NATIVE: 8, TOKEN: 4})
    for index, me in ((0, ALICE), (1, BOB)):
        result = crank_direct_fund(objective_of(index), done, me)
        assert result.waiting_for is W.DONE
        assert result.effects == ()
        assert result.done


@pytest.mark.parametrize(
    "view",
    [
        snapshot(),
        snapshot((signed(0, 0), None)),
        PREFUND_DONE,
        snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 5}),
        snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 8, TOKEN: 4}),
        snapshot((POSTFUND_BOTH, POSTFUND_BOTH), POSTFUND_BOTH, {NATIVE: 8, TOKEN: 4}),
    ],
)
def test_crank_is_idempotent(view: ChannelSnapshot) -> None:
    for index, me in ((0, ALICE), (1, BOB)):
        first = crank_direct_fund(objective_of(index), view, me)
        again = crank_direct_fund(first.objective, view, me)
        assert again == first
        assert first.objective == objective_of(index)


def test_restart_rebuilds_from_the_log_without_repeating_a_deposit() -> None:
    events: list[Event] = [
        StateReceived(ALICE.address, signed(0, 0)),
        TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL, TOKEN),
        StateReceived(ALICE.address, signed(1, 0)),
    ]
    # The chain has not shown Bob's token deposit yet; Alice's native one has landed.
    view = snapshot((PREFUND_BOTH, PREFUND_BOTH), PREFUND_BOTH, {NATIVE: 5})
    before_log = crank_direct_fund(objective_of(1), view, BOB)
    assert SubmitDeposit(CHANNEL, TOKEN, 0, 4) in before_log.effects
    rebuilt = objective_of(1)
    for event in events:
        rebuilt = update_direct_fund(rebuilt, event)
    assert rebuilt.deposits_submitted == frozenset({TOKEN})
    result = crank_direct_fund(rebuilt, view, BOB)
    assert result.effects == (SubmitDeposit(CHANNEL, NATIVE, 5, 3),)
    assert result.waiting_for is W.COMPLETE_FUNDING


def test_a_peer_proposes_by_sending_its_prefund() -> None:
    objective = direct_fund_from_prefund(
        StateReceived(ALICE.address, signed(0, 0)), BOB.address, CONSENSUS_APP
    )
    assert objective == objective_of(1)


def test_a_proposal_must_be_a_prefund_of_a_ledger_channel() -> None:
    with pytest.raises(PeerStateError) as caught:
        direct_fund_from_prefund(
            StateReceived(ALICE.address, signed(1, 0)), BOB.address, CONSENSUS_APP
        )
    assert caught.value.fault is PeerFault.WRONG_TURN
    with pytest.raises(PeerStateError, match="ConsensusApp") as caught:
        direct_fund_from_prefund(StateReceived(ALICE.address, signed(0, 0)), BOB.address, NATIVE)
    assert caught.value.fault is PeerFault.MALFORMED


# Error paths of update


def received(signed_state: SignedState, sender: str = ALICE.address) -> StateReceived:
    return StateReceived(sender, signed_state)


def fault_of(event: StateReceived, index: int = 1) -> PeerFault:
    with pytest.raises(PeerStateError) as caught:
        update_direct_fund(objective_of(index), event)
    # The engine handles it as any peer's protocol breach.
    assert isinstance(caught.value, PeerProtocolError)
    assert str(caught.value).startswith(caught.value.fault.value)
    return caught.value.fault


def test_a_state_of_another_channel_is_refused() -> None:
    other = State(ledger_fixed(nonce=8), b"", OUTCOME, 0, False)
    event = received(SignedState(other, {0: ALICE.sign_state(other)}))
    assert fault_of(event) is PeerFault.UNKNOWN_CHANNEL


@pytest.mark.parametrize("turn", [2, 3, 100])
def test_a_state_of_the_wrong_turn_is_refused(turn: int) -> None:
    wrong = State(FIXED, b"", OUTCOME, turn, False)
    assert fault_of(received(SignedState(wrong, {0: ALICE.sign_state(wrong)}))) is (
        PeerFault.WRONG_TURN
    )


@pytest.mark.parametrize(
    "changed",
    [
        State(FIXED, b"", OUTCOME[:1], 0, False),
        State(FIXED, b"\x01", OUTCOME, 0, False),
        State(FIXED, b"", OUTCOME, 1, True),
    ],
)
def test_a_setup_state_with_other_content_is_refused(changed: State) -> None:
    event = received(SignedState(changed, {0: ALICE.sign_state(changed)}))
    assert fault_of(event) is PeerFault.MALFORMED


def test_a_signature_at_the_wrong_index_is_refused() -> None:
    swapped = SignedState(state(0), {0: ALICE.sign_state(state(0)), 1: ALICE.sign_state(state(0))})
    assert fault_of(received(swapped)) is PeerFault.BAD_SIGNATURE


def test_a_signature_that_recovers_nothing_is_refused() -> None:
    junk = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + bytes((27,))
    assert fault_of(received(SignedState(state(0), {0: junk}))) is PeerFault.BAD_SIGNATURE


def test_a_signature_of_another_state_is_refused() -> None:
    stale = SignedState(state(0), {0: ALICE.sign_state(state(1))})
    assert fault_of(received(stale)) is PeerFault.NOT_A_PARTICIPANT


def test_a_signature_from_a_non_participant_is_refused() -> None:
    strangers = SignedState(state(0), {0: IRENE.sign_state(state(0))})
    assert fault_of(received(strangers)) is PeerFault.NOT_A_PARTICIPANT


def test_a_state_from_a_non_participant_sender_is_refused() -> None:
    assert fault_of(received(signed(0, 0), IRENE.address)) is PeerFault.NOT_A_PARTICIPANT


def test_a_state_the_sender_did_not_sign_is_refused() -> None:
    assert fault_of(received(signed(0, 1), ALICE.address)) is PeerFault.MALFORMED
    assert fault_of(received(SignedState(state(0)), ALICE.address)) is PeerFault.MALFORMED


def test_a_state_claiming_to_come_from_us_is_refused() -> None:
    assert fault_of(received(signed(0, 0, 1), BOB.address)) is PeerFault.MALFORMED


@pytest.mark.parametrize(
    "event",
    [
        TransactionSubmitted(TransactionKind.CONCLUDE_AND_TRANSFER, CHANNEL),
        TransactionSubmitted(TransactionKind.DEPOSIT, channel_id(ledger_fixed(nonce=8)), NATIVE),
        TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL, IRENE.address),
    ],
)
def test_a_transaction_record_of_something_else_is_refused(event: TransactionSubmitted) -> None:
    with pytest.raises(ProtocolError, match="transaction"):
        update_direct_fund(objective_of(0), event)
    failed = TransactionFailed(event.kind, event.channel_id, event.asset)
    with pytest.raises(ProtocolError, match="transaction"):
        update_direct_fund(objective_of(0), failed)


# Error paths of crank and of the request


def test_crank_refuses_a_snapshot_of_another_channel() -> None:
    with pytest.raises(ProtocolError, match="snapshot"):
        crank_direct_fund(objective_of(0), ChannelSnapshot(ledger_fixed(nonce=8)), ALICE)


def test_crank_refuses_a_signer_who_is_not_us() -> None:
    with pytest.raises(ProtocolError, match="signer"):
        crank_direct_fund(objective_of(0), snapshot(), BOB)


def test_crank_refuses_a_supported_prefund_that_is_not_ours() -> None:
    other = State(FIXED, b"", OUTCOME[:1], 0, False)
    both = SignedState(other, {0: ALICE.sign_state(other), 1: BOB.sign_state(other)})
    with pytest.raises(ProtocolError, match="supported"):
        crank_direct_fund(objective_of(0), snapshot((both, both), both), ALICE)


def guarantee_exit() -> SingleAssetExit:
    target = channel_id(ledger_fixed(nonce=9))
    alice = address_to_destination(ALICE.address)
    return SingleAssetExit(NATIVE, [Guarantee(target, 1, alice, alice).to_allocation()])


@pytest.mark.parametrize(
    ("fixed", "outcome", "me", "app", "problem"),
    [
        (ledger_fixed(participants=(ALICE, BOB, IRENE)), OUTCOME, ALICE, CONSENSUS_APP, "2"),
        (FIXED, OUTCOME, ALICE, NATIVE, "ConsensusApp"),
        (FIXED, (), ALICE, CONSENSUS_APP, "no asset"),
        (FIXED, (OUTCOME[0], OUTCOME[0]), ALICE, CONSENSUS_APP, "asset appears twice"),
        (
            FIXED,
            (simple_exit(NATIVE, [(ALICE, 1), (ALICE, 2)]),),
            ALICE,
            CONSENSUS_APP,
            "destination appears twice",
        ),
        (FIXED, (guarantee_exit(),), ALICE, CONSENSUS_APP, "guarantee"),
        (FIXED, OUTCOME, IRENE, CONSENSUS_APP, "not a participant"),
    ],
)
def test_new_direct_fund_refuses_what_the_protocol_forbids(
    fixed: object, outcome: tuple[SingleAssetExit, ...], me: object, app: str, problem: str
) -> None:
    with pytest.raises(ProtocolError, match=problem):
        new_direct_fund(fixed, outcome, me.address, app)  # type: ignore[arg-type, attr-defined]


def test_an_allocation_to_a_third_party_is_funded_by_nobody_in_particular() -> None:
    third = SingleAssetExit(
        NATIVE,
        [
            Allocation(address_to_destination(IRENE.address), 2),
            Allocation(address_to_destination(ALICE.address), 1),
        ],
    )
    bob = new_direct_fund(FIXED, (third,), BOB.address, CONSENSUS_APP)
    prefund = State(FIXED, b"", (third,), 0, False)
    both = SignedState(prefund, {0: ALICE.sign_state(prefund), 1: BOB.sign_state(prefund)})
    result = crank_direct_fund(bob, ChannelSnapshot(FIXED, (both, both), both, {}), BOB)
    # Bob has no allocation: his threshold is the whole outcome, so he deposits nothing.
    assert result.effects == ()
    assert result.waiting_for is W.MY_TURN_TO_FUND
