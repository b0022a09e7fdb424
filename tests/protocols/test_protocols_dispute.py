"""Settling a virtual channel on chain: the challenges, the ledger that funds it, and
the outcomes and fingerprints the adjudicator will record."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from hypothesis import given
from hypothesis import strategies as st

from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    Voucher,
    address_to_destination,
    channel_id,
    keccak256,
    outcome_hash,
    recover_challenge_signer,
    recover_state_signer,
    state_hash,
)
from node.core.errors import ProtocolError
from node.protocols import (
    REDEMPTION_TURN_NUM,
    ChannelSnapshot,
    VirtualAmounts,
    add_for,
    apply_proposal,
    concluded_with,
    final_state_for,
    finalized_with,
    fingerprint,
    funding_ledger,
    ledger_challenge,
    ledger_outcome_from_exit,
    ledger_payout,
    paid_out_outcome,
    reclaimed_outcome,
    redemption_state,
    state_fingerprint,
    virtual_challenge,
    virtual_conclusion,
    voucher_app_data,
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
from tests.protocols.protocols_virtual_fakes import (
    IVAN,
    PATHS,
    PAYEE_AMOUNT,
    PAYER_AMOUNT,
    funded_ledger,
    path_ledgers,
    setup_state,
    signed_by,
    virtual_fixed,
    virtual_outcome,
)

PATH = PATHS[1]
FIXED = virtual_fixed(PATH)
V = channel_id(FIXED)
POSTFUND = signed_by(setup_state(FIXED, virtual_outcome(PATH), 1), PATH)
OPEN = ChannelSnapshot(FIXED, (POSTFUND,) * 3, POSTFUND)
# Well formed, but r = 5 is no point's x coordinate: no public key recovers from it.
NO_KEY_SIGNATURE = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"


def funded(ledger: SignedState, fixed_v: FixedPart = FIXED, left_index: int = 0) -> SignedState:
    """``ledger`` after the Add that funds the virtual channel ``fixed_v``, signed by both."""
    fixed = ledger.state.fixed
    outcome = ledger_outcome_from_exit(fixed, ledger.state.outcome)
    amounts = VirtualAmounts(NATIVE, PAYER_AMOUNT, PAYEE_AMOUNT)
    after = apply_proposal(outcome, add_for(fixed_v, left_index, amounts))
    state = State(fixed, b"", after.to_exit(), ledger.state.turn_num + 1, False)
    signers = [s for s in (ALICE, IRENE, IVAN, BOB) if s.address in fixed.participants]
    return signed_by(state, signers)


def path_snapshots(path: tuple[Signer, ...]) -> list[ChannelSnapshot]:
    """Each ledger of the path funding the path's virtual channel."""
    fixed_v = virtual_fixed(path)
    snapshots = []
    for index, ledger in enumerate(path_ledgers(path)):
        signed = funded(ledger, fixed_v, index)
        snapshots.append(ChannelSnapshot(signed.state.fixed, (signed, signed), signed))
    return snapshots


# ---------------------------------------------------------------------- the redemption state


def test_the_redemption_state_moves_the_voucher_amount_to_the_payee() -> None:
    voucher = ALICE.voucher(V, 7)
    state = redemption_state(POSTFUND.state, voucher)
    assert (state.turn_num, state.is_final, state.fixed) == (REDEMPTION_TURN_NUM, False, FIXED)
    assert state.app_data == voucher_app_data(voucher)
    amounts = [a.amount for a in state.outcome[0].allocations]
    assert amounts == [PAYER_AMOUNT - 7, PAYEE_AMOUNT + 7]
    assert sum(amounts) == PAYER_AMOUNT + PAYEE_AMOUNT


@pytest.mark.parametrize(
    ("postfund", "voucher", "words"),
    [
        (setup_state(FIXED, virtual_outcome(PATH), 0), ALICE.voucher(V, 1), "not the postfund"),
        (POSTFUND.state, ALICE.voucher(b"\x01" * 32, 1), "for 0x0101"),
        (POSTFUND.state, BOB.voucher(V, 1), "not by the payer"),
        (POSTFUND.state, Voucher(V, 1, NO_KEY_SIGNATURE), "recovers no public key"),
        (POSTFUND.state, ALICE.voucher(V, PAYER_AMOUNT + 1), "above the payer's funds"),
        (
            setup_state(FIXED, (simple_exit(TOKEN, [(ALICE, 10), (BOB, 2)]),), 1),
            ALICE.voucher(V, 1),
            "the native one",
        ),
        (
            setup_state(FIXED, (simple_exit(NATIVE, [(BOB, 10), (ALICE, 2)]),), 1),
            ALICE.voucher(V, 1),
            r"exactly \[payer, payee\]",
        ),
    ],
)
def test_a_redemption_state_that_would_not_hold_on_chain_is_refused(
    postfund: State, voucher: Voucher, words: str
) -> None:
    with pytest.raises(ProtocolError, match=words):
        redemption_state(postfund, voucher)


# ---------------------------------------------------------------------- the virtual challenge


def test_the_payee_challenges_with_its_voucher_signed_by_itself_and_the_postfund() -> None:
    challenge = virtual_challenge(OPEN, BOB, ALICE.voucher(V, 4))
    candidate = challenge.candidate
    assert challenge.channel_id == V
    assert candidate.state == redemption_state(POSTFUND.state, ALICE.voucher(V, 4))
    assert candidate.signer_indices == {2}
    assert recover_state_signer(candidate.state, candidate.signatures[0][1]) == BOB.address
    assert challenge.proof == (POSTFUND,)
    assert recover_challenge_signer(candidate.state, challenge.signature) == BOB.address


@pytest.mark.parametrize(
    ("signer", "voucher"),
    [(BOB, None), (BOB, Voucher(V, 0, ALICE.sign_voucher(V, 0))), (IRENE, None), (ALICE, None)],
)
def test_without_a_voucher_to_redeem_the_postfund_is_the_candidate(
    signer: Signer, voucher: Voucher | None
) -> None:
    challenge = virtual_challenge(OPEN, signer, voucher)
    assert (challenge.candidate, challenge.proof) == (POSTFUND, ())
    assert recover_challenge_signer(POSTFUND.state, challenge.signature) == signer.address


def test_a_funding_stopped_half_way_is_enforced_with_the_prefund() -> None:
    prefund = signed_by(setup_state(FIXED, virtual_outcome(PATH), 0), PATH)
    snapshot = ChannelSnapshot(FIXED, (prefund,) * 3, prefund)
    for signer in PATH:
        # No voucher was accepted on a channel that never opened: none is redeemed.
        challenge = virtual_challenge(snapshot, signer, ALICE.voucher(V, 4))
        assert (challenge.candidate, challenge.proof) == (prefund, ())


def test_an_intermediary_ignores_a_voucher_it_could_not_redeem() -> None:
    challenge = virtual_challenge(OPEN, IRENE, ALICE.voucher(V, 4))
    assert challenge.candidate == POSTFUND


def final_snapshot() -> ChannelSnapshot:
    final = signed_by(final_state_for(OPEN, 3), PATH)
    return ChannelSnapshot(FIXED, (final,) * 3, final)


@pytest.mark.parametrize(
    ("snapshot", "signer", "words"),
    [
        (OPEN, IVAN, "is not a participant"),
        (ChannelSnapshot(FIXED), BOB, "nothing to enforce"),
        (
            ChannelSnapshot(FIXED, None, signed_by(POSTFUND.state, [ALICE, BOB])),
            BOB,
            "lacks a participant's signature",
        ),
        (final_snapshot(), BOB, "only a setup state"),
    ],
)
def test_what_cannot_be_challenged_is_refused(
    snapshot: ChannelSnapshot, signer: Signer, words: str
) -> None:
    with pytest.raises(ProtocolError, match=words):
        virtual_challenge(snapshot, signer, ALICE.voucher(V, 1))


def test_a_payee_s_bad_voucher_is_refused_before_anything_is_signed() -> None:
    with pytest.raises(ProtocolError, match="not by the payer"):
        virtual_challenge(OPEN, BOB, IRENE.voucher(V, 1))


# ---------------------------------------------------------------------- the funding ledger


@pytest.mark.parametrize("hops", sorted(PATHS))
def test_each_participant_finds_its_ledger_toward_the_payer(hops: int) -> None:
    path = PATHS[hops]
    fixed_v = virtual_fixed(path)
    ledgers = path_snapshots(path)
    for index, signer in enumerate(path):
        funding = funding_ledger(fixed_v, signer.address, ledgers)
        expected = ledgers[index - 1] if index > 0 else ledgers[0]
        assert funding.id == expected.channel_id
        assert funding.supported == expected.supported
        participants = funding.supported.state.fixed.participants
        assert participants[funding.my_index] == signer.address
        guarantee = funding.guarantee
        assert (guarantee.target, guarantee.amount) == (channel_id(fixed_v), 12)
        challenge = ledger_challenge(funding, signer)
        assert (challenge.candidate, challenge.proof) == (funding.supported, ())
        assert recover_challenge_signer(challenge.candidate.state, challenge.signature) == (
            signer.address
        )


def test_an_intermediary_may_choose_its_ledger_toward_the_payee() -> None:
    ledgers = path_snapshots(PATH)
    funding = funding_ledger(FIXED, IRENE.address, ledgers, ledgers[1].channel_id)
    assert funding.id == ledgers[1].channel_id
    with pytest.raises(ProtocolError, match="not our ledger next to us"):
        funding_ledger(FIXED, BOB.address, ledgers, ledgers[0].channel_id)
    with pytest.raises(ProtocolError, match="not our ledger next to us"):
        funding_ledger(FIXED, BOB.address, ledgers, b"\x09" * 32)


def test_a_ledger_that_does_not_guarantee_the_channel_is_nothing_to_enforce() -> None:
    plain = funded_ledger(IRENE, BOB, nonce=77)
    other_v = virtual_fixed(PATH, nonce=5)
    other = funded(plain, other_v, 1)
    final_state = State(plain.state.fixed, b"", plain.state.outcome, 9, True)
    candidates = [
        ChannelSnapshot(plain.state.fixed, (plain, plain), plain),  # no guarantee
        ChannelSnapshot(other.state.fixed, (other, other), other),  # another channel's
        ChannelSnapshot(plain.state.fixed),  # nothing supported
        ChannelSnapshot(plain.state.fixed, None, signed_by(final_state, (IRENE, BOB))),
    ]
    swapped = funded(plain, FIXED, 1)
    outcome = swapped.state.outcome[0]
    *parties, guarantee = outcome.allocations
    meta = guarantee.metadata
    reversed_meta = Allocation(guarantee.destination, guarantee.amount, 2, meta[32:] + meta[:32])
    bad = State(
        plain.state.fixed, b"", (SingleAssetExit(NATIVE, [*parties, reversed_meta]),), 2, False
    )
    bad_signed = signed_by(bad, (IRENE, BOB))
    candidates.append(ChannelSnapshot(bad.fixed, (bad_signed, bad_signed), bad_signed))
    for snapshot in candidates:
        with pytest.raises(ProtocolError, match="nothing to enforce"):
            funding_ledger(FIXED, BOB.address, [snapshot])
    with pytest.raises(ProtocolError, match="is not a participant"):
        funding_ledger(FIXED, IVAN.address, path_snapshots(PATH))


def test_only_our_own_ledger_party_challenges_it() -> None:
    funding = funding_ledger(FIXED, BOB.address, path_snapshots(PATH))
    with pytest.raises(ProtocolError, match="is not participant"):
        ledger_challenge(funding, IRENE)


# ---------------------------------------------------------------------- what the chain records


def ledger_exit(alice: int, irene: int, guaranteed: int) -> tuple[SingleAssetExit, ...]:
    left, right = (address_to_destination(s.address) for s in (ALICE, IRENE))
    return (
        SingleAssetExit(
            NATIVE,
            [
                Allocation(left, alice),
                Allocation(right, irene),
                Allocation(V, guaranteed, 2, left + right),
            ],
        ),
    )


def test_reclaim_credits_the_guarantee_s_parties_as_the_adjudicator_does() -> None:
    # The numbers of the adjudicator's own reclaim test on anvil.
    target = (simple_exit(NATIVE, [(ALICE, 7), (BOB, 3)]),)
    assert reclaimed_outcome(ledger_exit(5, 5, 10), 2, target) == (
        simple_exit(NATIVE, [(ALICE, 12), (IRENE, 8)]),
    )


@pytest.mark.parametrize(
    ("index", "target", "words"),
    [
        (0, (simple_exit(NATIVE, [(ALICE, 7), (BOB, 3)]),), "allocation 0"),
        (3, (simple_exit(NATIVE, [(ALICE, 7), (BOB, 3)]),), "no allocation 3"),
        (2, (simple_exit(NATIVE, [(ALICE, 7), (BOB, 2)]),), "the guarantee locks 10"),
        (2, (simple_exit(TOKEN, [(ALICE, 7), (BOB, 3)]),), "is not the ledger's"),
        (2, (simple_exit(NATIVE, [(ALICE, 10)]),), "exactly two allocations"),
        (2, (), "one asset each"),
    ],
)
def test_a_reclaim_the_adjudicator_would_refuse_is_refused(
    index: int, target: tuple[SingleAssetExit, ...], words: str
) -> None:
    with pytest.raises(ProtocolError, match=words):
        reclaimed_outcome(ledger_exit(5, 5, 10), index, target)


def test_a_guarantee_whose_parties_are_not_in_the_ledger_is_refused() -> None:
    (exit_,) = ledger_exit(5, 5, 10)
    bob = address_to_destination(BOB.address)
    left = exit_.allocations[0].destination
    guarantee = Allocation(V, 10, 2, left + bob)
    source = (SingleAssetExit(NATIVE, [*exit_.allocations[:2], guarantee]),)
    with pytest.raises(ProtocolError, match="not both in the ledger"):
        reclaimed_outcome(source, 2, (simple_exit(NATIVE, [(ALICE, 7), (BOB, 3)]),))


@given(
    st.integers(0, 10**30),
    st.integers(0, 10**30),
    st.integers(0, 10**30),
    st.integers(0, 10**30),
)
def test_reclaim_keeps_the_ledger_s_total_and_moves_the_guarantee(
    alice: int, irene: int, left: int, right: int
) -> None:
    target = (simple_exit(NATIVE, [(ALICE, left), (BOB, right)]),)
    after = reclaimed_outcome(ledger_exit(alice, irene, left + right), 2, target)
    assert [a.amount for a in after[0].allocations] == [alice + left, irene + right]
    assert all(a.allocation_type == 0 for a in after[0].allocations)


def test_the_fingerprint_is_the_low_160_bits_of_the_status_hash() -> None:
    state = POSTFUND.state
    digest = keccak256(
        abi_encode(["bytes32", "bytes32"], [state_hash(state), outcome_hash(state.outcome)])
    )
    assert state_fingerprint(state) == int.from_bytes(digest[12:], "big")
    assert fingerprint(bytes(32), state.outcome) != state_fingerprint(state)
    redeemed = redemption_state(state, ALICE.voucher(V, 3))
    recorded = state_fingerprint(redeemed)
    assert finalized_with(recorded, [state, redeemed]) == redeemed
    assert finalized_with(recorded, [state]) is None


def test_a_payout_pays_in_allocation_order_as_far_as_the_holdings_go() -> None:
    settled = (simple_exit(NATIVE, [(ALICE, 12), (IRENE, 8)]),)
    assert paid_out_outcome(settled, (), 20) == (simple_exit(NATIVE, [(ALICE, 0), (IRENE, 0)]),)
    # In allocation order, as far as the holdings go; only the chosen ones are paid.
    assert paid_out_outcome(settled, (), 15) == (simple_exit(NATIVE, [(ALICE, 0), (IRENE, 5)]),)
    kept = paid_out_outcome(ledger_exit(5, 5, 10), (1,), 20)
    assert [a.amount for a in kept[0].allocations] == [5, 0, 10]
    short = paid_out_outcome(ledger_exit(5, 5, 10), (1,), 7)
    assert [a.amount for a in short[0].allocations] == [5, 3, 10]


# ---------------------------------------------------------------------- a close everyone signed


def test_a_final_state_everyone_signed_is_concluded_instead() -> None:
    final = final_snapshot()
    assert virtual_conclusion(final, BOB.address) == final.supported
    assert virtual_conclusion(OPEN, BOB.address) is None
    half = signed_by(final_state_for(OPEN, 3), [ALICE, BOB])
    assert virtual_conclusion(ChannelSnapshot(FIXED, None, half), IRENE.address) is None
    with pytest.raises(ProtocolError, match="is not a participant"):
        virtual_conclusion(final, IVAN.address)
    assert final.supported is not None
    state = final.supported.state
    assert concluded_with(fingerprint(bytes(32), state.outcome), state)
    assert not concluded_with(state_fingerprint(state), state)


def test_a_ledger_payout_follows_the_status_through_its_steps() -> None:
    ledger = ledger_fixed(3, (ALICE, IRENE))
    challenged = State(ledger, b"", ledger_exit(5, 5, 10), 4, False)
    target = (simple_exit(NATIVE, [(ALICE, 7), (BOB, 3)]),)
    payout = ledger_payout(challenged, 1, {V: target})
    assert payout.reclaims == ((V, 2, challenged.outcome),)
    assert payout.reclaimed == reclaimed_outcome(challenged.outcome, 2, target)
    assert payout.payout == 8
    recorded = state_hash(challenged)
    assert payout.stage_of(state_fingerprint(challenged)) == 0
    assert payout.stage_of(fingerprint(recorded, payout.reclaimed)) == 1
    assert payout.stage_of(fingerprint(recorded, payout.paid_out)) == 2
    assert payout.stage_of(fingerprint(bytes(32), challenged.outcome)) is None
    with pytest.raises(ProtocolError, match="has no outcome"):
        ledger_payout(challenged, 1, {b"\x03" * 32: target})
    with pytest.raises(ProtocolError, match="the guarantee locks 10"):
        ledger_payout(challenged, 1, {V: (simple_exit(NATIVE, [(ALICE, 1), (BOB, 3)]),)})


def test_every_guarantee_of_a_ledger_is_reclaimed_in_its_order() -> None:
    ledger = ledger_fixed(3, (ALICE, IRENE))
    left, right = (address_to_destination(s.address) for s in (ALICE, IRENE))
    first, second = sorted([V, b"\x02" * 32])
    allocations = [
        Allocation(left, 5),
        Allocation(right, 5),
        Allocation(first, 10, 2, left + right),
        Allocation(second, 4, 2, left + right),
    ]
    challenged = State(ledger, b"", (SingleAssetExit(NATIVE, allocations),), 6, False)
    targets = {
        first: (simple_exit(NATIVE, [(ALICE, 7), (BOB, 3)]),),
        second: (simple_exit(NATIVE, [(ALICE, 0), (BOB, 4)]),),
    }
    payout = ledger_payout(challenged, 1, targets)
    assert [(target, index) for target, index, _ in payout.reclaims] == [(first, 2), (second, 2)]
    assert payout.reclaims[1][2] == reclaimed_outcome(challenged.outcome, 2, targets[first])
    assert payout.reclaimed == (simple_exit(NATIVE, [(ALICE, 12), (IRENE, 12)]),)
    assert payout.payout == 12
    assert payout.stage_of(fingerprint(state_hash(challenged), payout.reclaims[1][2])) == 1
