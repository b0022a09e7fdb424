"""Objective ids, the snapshot's checks, events' checks, and the approval policy."""

from __future__ import annotations

import pytest

from node.core import InvalidValueError, SignedState, State, channel_id
from node.protocols import (
    ChannelSnapshot,
    Decision,
    DirectDefundWaitingFor,
    DirectFundWaitingFor,
    ObjectiveId,
    ObjectiveKind,
    PolicyLimits,
    TransactionFailed,
    TransactionKind,
    TransactionSubmitted,
    VirtualFund,
    approve_within_limits,
    is_done,
    limits_policy,
    new_direct_defund,
    new_direct_fund,
    parse_objective_id,
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
from tests.protocols.protocols_virtual_fakes import (
    IVAN,
    virtual_fixed,
    virtual_outcome,
)

FIXED = ledger_fixed()
CHANNEL = channel_id(FIXED)


@pytest.mark.parametrize("kind", list(ObjectiveKind))
def test_objective_id_round_trips_through_its_text(kind: ObjectiveKind) -> None:
    objective_id = ObjectiveId(kind, CHANNEL)
    text = str(objective_id)
    assert text == f"{kind.value}-0x{CHANNEL.hex()}"
    assert parse_objective_id(text) == objective_id


@pytest.mark.parametrize(
    "text",
    [
        f"VirtualFund-0x{CHANNEL.hex()}",
        f"DirectFunding-{CHANNEL.hex()}",
        f"DirectFunding-0x{CHANNEL.hex()[:-2]}",
        f"DirectFunding-0x{CHANNEL.hex().upper()}",
        "DirectFunding-0x" + "zz" * 32,
        "",
    ],
)
def test_bad_objective_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidValueError, match="objective_id"):
        parse_objective_id(text)


def test_objective_id_fields_are_checked() -> None:
    with pytest.raises(InvalidValueError, match="kind"):
        ObjectiveId("DirectFunding", CHANNEL)  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="channel_id"):
        ObjectiveId(ObjectiveKind.DIRECT_FUND, CHANNEL[:31])
    with pytest.raises(InvalidValueError, match="objective_id"):
        parse_objective_id(7)  # type: ignore[arg-type]


def test_snapshot_checks_its_parts() -> None:
    other = State(ledger_fixed(nonce=8), b"", (), 0, False)
    with pytest.raises(InvalidValueError, match="latest_signed"):
        ChannelSnapshot(FIXED, [None])
    with pytest.raises(InvalidValueError, match=r"latest_signed\[1\]"):
        ChannelSnapshot(FIXED, [None, SignedState(other)])
    with pytest.raises(InvalidValueError, match="supported"):
        ChannelSnapshot(FIXED, supported=SignedState(other))
    with pytest.raises(InvalidValueError, match="holdings"):
        ChannelSnapshot(FIXED, holdings={NATIVE: -1})
    snapshot = ChannelSnapshot(FIXED, holdings=[(TOKEN, 3), (NATIVE.lower(), 2)])
    assert snapshot.channel_id == CHANNEL
    assert snapshot.holdings == ((NATIVE, 2), (TOKEN, 3))
    assert snapshot.holding(TOKEN) == 3
    assert snapshot.holding(IRENE.address) == 0


def test_transaction_records_name_an_asset_exactly_for_deposits() -> None:
    with pytest.raises(InvalidValueError, match="asset"):
        TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL)
    with pytest.raises(InvalidValueError, match="asset"):
        TransactionSubmitted(TransactionKind.CONCLUDE_AND_TRANSFER, CHANNEL, NATIVE)
    assert TransactionSubmitted(TransactionKind.DEPOSIT, CHANNEL, NATIVE.lower()).asset == NATIVE
    with pytest.raises(InvalidValueError, match="asset"):
        TransactionFailed(TransactionKind.DEPOSIT, CHANNEL)
    with pytest.raises(InvalidValueError, match="asset"):
        TransactionFailed(TransactionKind.CONCLUDE_AND_TRANSFER, CHANNEL, NATIVE)


def test_only_done_is_done() -> None:
    assert [w for w in DirectFundWaitingFor if is_done(w)] == [DirectFundWaitingFor.DONE]
    assert [w for w in DirectDefundWaitingFor if is_done(w)] == [DirectDefundWaitingFor.DONE]


# Policy

OUTCOME = (simple_exit(NATIVE, [(ALICE, 5), (BOB, 3)]), simple_exit(TOKEN, [(BOB, 4)]))
BOBS = new_direct_fund(FIXED, OUTCOME, BOB.address, CONSENSUS_APP)


def _limits(
    deposit_max: dict[str, int] | None = None, counterparties: list[str] | None = None
) -> PolicyLimits:
    """Limits that accept the fakes' 60 s challenge duration."""
    return PolicyLimits(deposit_max or {}, counterparties, challenge_duration_s_min=10)


def test_policy_approves_within_limits() -> None:
    limits = _limits({NATIVE: 3, TOKEN: 10}, counterparties=[ALICE.address])
    assert approve_within_limits(BOBS, limits) == Decision(True)
    assert limits_policy(limits)(BOBS) == Decision(True)


def test_policy_refuses_a_deposit_over_the_limit() -> None:
    decision = approve_within_limits(BOBS, _limits({NATIVE: 2, TOKEN: 10}))
    assert not decision.approved
    assert "deposit of 3" in decision.reason


def test_policy_refuses_an_asset_it_does_not_list() -> None:
    decision = approve_within_limits(BOBS, _limits({NATIVE: 3}))
    assert not decision.approved
    assert TOKEN in decision.reason


def test_policy_refuses_a_counterparty_not_allowed() -> None:
    decision = approve_within_limits(
        BOBS, _limits({NATIVE: 3, TOKEN: 4}, counterparties=[IRENE.address])
    )
    assert not decision.approved
    assert ALICE.address in decision.reason


def test_policy_approves_a_channel_where_we_deposit_nothing() -> None:
    alices = new_direct_fund(
        FIXED, (simple_exit(NATIVE, [(BOB, 3)]),), ALICE.address, CONSENSUS_APP
    )
    assert approve_within_limits(alices, _limits()) == Decision(True)


def test_policy_always_agrees_to_close() -> None:
    postfund = State(FIXED, b"", OUTCOME, 1, False)
    signed = SignedState(postfund, {0: ALICE.sign_state(postfund), 1: BOB.sign_state(postfund)})
    defund = new_direct_defund(ChannelSnapshot(FIXED, (signed, signed), signed), BOB.address)
    assert approve_within_limits(defund, _limits()) == Decision(True)


def test_policy_limits_are_checked() -> None:
    with pytest.raises(InvalidValueError, match="deposit_max"):
        PolicyLimits({NATIVE: -1})
    with pytest.raises(InvalidValueError, match=r"deposit_max\.asset"):
        PolicyLimits({"native": 1})
    with pytest.raises(InvalidValueError, match="counterparties"):
        PolicyLimits(counterparties=["bob"])
    assert PolicyLimits([(NATIVE.lower(), 1)]).deposit_max_of(NATIVE) == 1
    with pytest.raises(InvalidValueError, match="challenge_duration_s_min"):
        PolicyLimits(challenge_duration_s_min=100, challenge_duration_s_max=99)
    with pytest.raises(InvalidValueError, match="uint48"):
        PolicyLimits(challenge_duration_s_max=2**48)


def test_policy_refuses_a_challenge_duration_outside_its_bounds() -> None:
    """A short duration lets a stale challenge finalize before we can answer; a long
    one locks our funds: both refused, for ledger and virtual channels alike."""
    deposits = {NATIVE: 100, TOKEN: 100}
    assert PolicyLimits().check_challenge_duration(0).approved is False
    for low, high in ((61, 1000), (10, 59)):
        limits = PolicyLimits(deposits, challenge_duration_s_min=low, challenge_duration_s_max=high)
        for objective in (BOBS, _virtual(1)):
            decision = approve_within_limits(objective, limits)
            assert not decision.approved
            assert decision.reason == (
                f"challenge duration 60 s is outside the {low}..{high} s accepted"
            )
    exact = PolicyLimits(deposits, challenge_duration_s_min=60, challenge_duration_s_max=60)
    assert approve_within_limits(BOBS, exact) == Decision(True)
    assert approve_within_limits(_virtual(1), exact) == Decision(True)


# Policy on virtual channels: what our ledgers lock, and who our neighbours are.

VIRTUAL_FIXED = virtual_fixed([ALICE, IRENE, IVAN, BOB])
VIRTUAL_OUTCOME = virtual_outcome([ALICE, BOB])  # Alice 10, Bob 2


def _virtual(me: int) -> VirtualFund:
    return VirtualFund(VIRTUAL_FIXED, VIRTUAL_OUTCOME, me)


@pytest.mark.parametrize(("me", "locked"), [(1, 12), (2, 12), (3, 2)])
def test_policy_on_a_virtual_channel_bounds_what_our_ledgers_lock(me: int, locked: int) -> None:
    assert approve_within_limits(_virtual(me), _limits({NATIVE: locked})) == Decision(True)
    decision = approve_within_limits(_virtual(me), _limits({NATIVE: locked - 1}))
    assert not decision.approved
    assert f"locking {locked} of {NATIVE} exceeds the limit {locked - 1}" == decision.reason


def test_policy_on_a_virtual_channel_checks_only_our_neighbours() -> None:
    irene_knows = _limits({NATIVE: 100}, counterparties=[ALICE.address, IVAN.address])
    assert approve_within_limits(_virtual(1), irene_knows) == Decision(True)
    bob_knows = _limits({NATIVE: 100}, counterparties=[ALICE.address])
    decision = approve_within_limits(_virtual(3), bob_knows)
    assert not decision.approved
    assert IVAN.address in decision.reason
