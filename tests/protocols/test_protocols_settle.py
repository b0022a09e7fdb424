"""The Settle objective step by step: challenges, finalization, reclaims, payout.

Each crank reads what the derivation module folds of confirmed chain events (the
registered candidate, conclusions, reclaims, holdings) and the chain's time; the
effects asked for at each pause point are checked, and that a transaction already
sent is not asked for again.
"""

from __future__ import annotations

import pytest

from node.core import SignedState, channel_id, state_hash
from node.core.errors import ProtocolError
from node.protocols import (
    REDEMPTION_TURN_NUM,
    ChannelSnapshot,
    ObjectiveView,
    RecordSignedState,
    Settle,
    SettleWaitingFor,
    StateReceived,
    SubmitChallenge,
    SubmitConclude,
    SubmitReclaim,
    SubmitTransfer,
    TransactionFailed,
    TransactionKind,
    TransactionSubmitted,
    crank,
    final_state_for,
    new_settle,
    settlement_amounts,
    update,
)
from tests.protocols.protocols_fakes import ALICE, BOB, IRENE, NATIVE
from tests.protocols.protocols_virtual_fakes import (
    PATHS,
    PAYEE_AMOUNT,
    PAYER_AMOUNT,
    setup_state,
    signed_by,
    virtual_fixed,
    virtual_outcome,
)
from tests.protocols.test_protocols_dispute import path_snapshots

PATH = PATHS[1]  # Alice, Irene, Bob
FIXED = virtual_fixed(PATH)
V = channel_id(FIXED)
POSTFUND = signed_by(setup_state(FIXED, virtual_outcome(PATH), 1), PATH)
OPEN = ChannelSnapshot(FIXED, (POSTFUND,) * 3, POSTFUND)
# Bob's ledger with Irene: Bob leads it, and it guarantees V.
LEDGER = path_snapshots(PATH)[1]
L = LEDGER.channel_id
HELD = sum(a.amount for a in LEDGER.supported.state.outcome[0].allocations)  # type: ignore[union-attr]
FUNDED_LEDGER = ChannelSnapshot(
    LEDGER.fixed, LEDGER.latest_signed, LEDGER.supported, {NATIVE: HELD}
)
PAID = 3
VOUCHER = ALICE.voucher(V, PAID)
NOW = 1_000


def bob_settles() -> Settle:
    objective = new_settle(OPEN, BOB.address, [FUNDED_LEDGER])
    assert (objective.channel_id, objective.ledger_id, objective.my_index) == (V, L, 0)
    return objective


def view(
    ledger: ChannelSnapshot = FUNDED_LEDGER,
    channel: ChannelSnapshot = OPEN,
    now: int = NOW,
) -> ObjectiveView:
    return ObjectiveView(ledger, guaranteed={V: channel}, vouchers={V: VOUCHER}, chain_time_s=now)


def on_chain(snapshot: ChannelSnapshot, **facts: object) -> ChannelSnapshot:
    """``snapshot`` with other chain facts (challenge, finalizes_at, concluded, ...)."""
    fields = {
        "holdings": snapshot.holdings,
        "finalizes_at": snapshot.finalizes_at,
        "challenge": snapshot.challenge,
        "concluded": snapshot.concluded,
        "reclaims": snapshot.reclaims,
        **facts,
    }
    return ChannelSnapshot(snapshot.fixed, snapshot.latest_signed, snapshot.supported, **fields)  # type: ignore[arg-type]


def challenged(snapshot: ChannelSnapshot, candidate: SignedState, at: int) -> ChannelSnapshot:
    return on_chain(snapshot, challenge=candidate, finalizes_at=at)


def sent(objective: Settle, kind: TransactionKind, channel: bytes) -> Settle:
    updated = update(objective, TransactionSubmitted(kind, channel))
    assert isinstance(updated, Settle)
    return updated


def test_a_payee_challenges_with_its_voucher_then_reclaims_and_pays_out() -> None:
    objective = bob_settles()
    first = crank(objective, view(), BOB)
    assert first.waiting_for is SettleWaitingFor.CHALLENGES
    record, on_v, on_l = first.effects
    assert isinstance(record, RecordSignedState)
    assert isinstance(on_v, SubmitChallenge)
    assert isinstance(on_l, SubmitChallenge)
    redemption = on_v.candidate
    assert record.signed_state == redemption  # logged before it leaves
    assert (redemption.state.turn_num, on_v.channel_id, on_v.proof) == (
        REDEMPTION_TURN_NUM,
        V,
        (POSTFUND,),
    )
    assert on_l.candidate == LEDGER.supported
    # Sent: not asked for again while pending.
    objective = sent(sent(objective, TransactionKind.CHALLENGE, V), TransactionKind.CHALLENGE, L)
    assert crank(objective, view(), BOB).effects == ()
    # Registered: waiting for the chain's time.
    registered_v = challenged(OPEN, redemption, NOW + 30)
    registered_l = challenged(FUNDED_LEDGER, on_l.candidate, NOW + 60)
    waiting = crank(objective, view(registered_l, registered_v), BOB)
    assert (waiting.effects, waiting.waiting_for) == ((), SettleWaitingFor.FINALIZATION)
    # What V's finalized outcome pays its payee: his own 2 and the 3 of the voucher.
    assert settlement_amounts(objective, view(registered_l, registered_v, NOW + 31)) == (
        PAYEE_AMOUNT + PAID,
        None,
    )
    # Finalized: the guarantee is reclaimed, then the ledger paid out.
    later = NOW + 61
    (reclaim,) = crank(objective, view(registered_l, registered_v, later), BOB).effects
    assert isinstance(reclaim, SubmitReclaim)
    assert (reclaim.ledger_id, reclaim.target, reclaim.target_index) == (L, V, 2)
    assert reclaim.ledger_state_hash == state_hash(on_l.candidate.state)
    assert reclaim.target_state_hash == state_hash(redemption.state)
    objective = sent(objective, TransactionKind.RECLAIM, V)
    reclaimed = on_chain(registered_l, reclaims=1)
    result = crank(objective, view(reclaimed, registered_v, later), BOB)
    (transfer,) = result.effects
    assert isinstance(transfer, SubmitTransfer)
    amounts = [a.amount for a in transfer.outcome[0].allocations]
    # Bob and Irene each had 100 in the ledger; V locked Alice's 10 and Bob's 2 there.
    assert amounts == [
        100 - PAYEE_AMOUNT + PAYEE_AMOUNT + PAID,
        100 - PAYER_AMOUNT + PAYER_AMOUNT - PAID,
    ]
    assert settlement_amounts(objective, view(reclaimed, registered_v, later)) == (
        PAYEE_AMOUNT + PAID,
        amounts[0],
    )
    paid_out = on_chain(reclaimed, holdings={NATIVE: 0})
    done = crank(
        sent(objective, TransactionKind.TRANSFER, L), view(paid_out, registered_v, later), BOB
    )
    assert done.waiting_for is SettleWaitingFor.DONE


def test_a_refused_transaction_is_asked_for_again() -> None:
    objective = sent(bob_settles(), TransactionKind.CHALLENGE, L)
    assert [type(e) for e in crank(objective, view(), BOB).effects] == [
        RecordSignedState,
        SubmitChallenge,
    ]
    refused = update(objective, TransactionFailed(TransactionKind.CHALLENGE, L))
    assert len(crank(refused, view(), BOB).effects) == 3


def test_a_channel_challenged_as_high_is_left_alone_and_a_stale_one_is_answered() -> None:
    objective = bob_settles()
    mine = crank(objective, view(), BOB).effects[1]
    assert isinstance(mine, SubmitChallenge)
    as_high = challenged(OPEN, mine.candidate, NOW + 30)
    assert [type(e) for e in crank(objective, view(channel=as_high), BOB).effects] == [
        SubmitChallenge  # the ledger's only
    ]
    stale = challenged(OPEN, POSTFUND, NOW + 30)
    effects = crank(objective, view(channel=stale), BOB).effects
    assert any(isinstance(e, SubmitChallenge) and e.channel_id == V for e in effects)


def test_a_final_state_everyone_signed_is_concluded() -> None:
    final = final_state_for(OPEN, PAID)
    signed = signed_by(final, PATH)
    closed = ChannelSnapshot(FIXED, (signed,) * 3, signed)
    objective = new_settle(closed, BOB.address, [FUNDED_LEDGER])
    effects = crank(objective, view(channel=closed), BOB).effects
    assert isinstance(effects[0], SubmitConclude)
    assert effects[0].signed_final == signed
    concluded = on_chain(closed, concluded=True, finalizes_at=NOW)
    effects = crank(objective, view(channel=concluded), BOB).effects
    assert [type(e) for e in effects] == [SubmitChallenge]  # the ledger only


def test_what_cannot_be_settled_is_refused() -> None:
    with pytest.raises(ProtocolError, match="nothing to enforce, no state signed"):
        new_settle(ChannelSnapshot(FIXED), BOB.address, [FUNDED_LEDGER])
    with pytest.raises(ProtocolError, match="no supported ledger state of ours"):
        new_settle(OPEN, BOB.address, [])
    with pytest.raises(ProtocolError, match="not a participant"):
        new_settle(OPEN, "0x" + "12" * 20, [FUNDED_LEDGER])
    objective = bob_settles()
    unknown = ObjectiveView(FUNDED_LEDGER, chain_time_s=NOW)
    with pytest.raises(ProtocolError, match="this node does not know"):
        crank(objective, unknown, BOB)
    with pytest.raises(ProtocolError, match="signer"):
        crank(objective, view(), IRENE)


def test_a_channel_finalized_with_an_unknown_state_cannot_be_reclaimed() -> None:
    objective = bob_settles()
    registered_l = challenged(FUNDED_LEDGER, LEDGER.supported, NOW)  # type: ignore[arg-type]
    expired = on_chain(OPEN, finalizes_at=NOW)  # finalized, candidate unknown
    with pytest.raises(ProtocolError, match="finalized with a state this node does not know"):
        crank(objective, view(registered_l, expired, NOW + 1), BOB)


def test_a_settlement_takes_no_states_from_peers() -> None:
    objective = bob_settles()
    with pytest.raises(ProtocolError, match="takes no states"):
        update(objective, StateReceived(ALICE.address, POSTFUND))
    assert objective.fixed == objective.ledger  # it is cranked on its ledger
