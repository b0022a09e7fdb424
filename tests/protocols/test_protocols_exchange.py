"""Two parties run DirectFund then DirectDefund against each other and a fake adjudicator."""

from __future__ import annotations

from node.core import channel_id
from node.protocols import (
    DirectDefund,
    DirectFund,
    Objective,
    SendSignedState,
    StateReceived,
    SubmitDeposit,
    direct_defund_from_final,
    new_direct_defund,
    new_direct_fund,
    update,
)
from tests.protocols.protocols_fakes import (
    ALICE,
    BOB,
    CONSENSUS_APP,
    NATIVE,
    TOKEN,
    FakeAdjudicator,
    FakeChannelStore,
    Party,
    deliver,
    ledger_fixed,
    run_until_done,
    simple_exit,
)

FIXED = ledger_fixed()
OUTCOME = (
    simple_exit(NATIVE, [(ALICE, 5), (BOB, 3)]),
    simple_exit(TOKEN, [(BOB, 4), (ALICE, 2)]),
)


def fund_parties() -> list[Party]:
    return [
        Party(signer, new_direct_fund(FIXED, OUTCOME, signer.address, CONSENSUS_APP), store)
        for signer, store in ((ALICE, FakeChannelStore(FIXED)), (BOB, FakeChannelStore(FIXED)))
    ]


def rebuild(party: Party, chain: FakeAdjudicator) -> Objective:
    """What a restart does: build the objective again and replay its logged events."""
    objective: Objective
    me = party.signer.address
    if isinstance(party.objective, DirectFund):
        objective = new_direct_fund(FIXED, OUTCOME, me, CONSENSUS_APP)
    else:
        objective = new_direct_defund(party.store.snapshot(chain), me)
    for event in party.events:
        objective = update(objective, event)
    return objective


def start_defund(alice: Party, bob: Party, chain: FakeAdjudicator) -> None:
    """Alice asks to close; Bob takes the objective from her final state."""
    alice.objective = new_direct_defund(alice.store.snapshot(chain), ALICE.address)
    alice.events = []
    result = alice.crank(chain)
    (message,) = result.effects
    assert isinstance(message, SendSignedState)
    event = StateReceived(ALICE.address, alice.outbox.pop().signed_state)
    bob.objective = direct_defund_from_final(bob.store.snapshot(chain), BOB.address, event)
    bob.events = [event]
    bob.store.accept(event.signed_state)


def check_paid_out(chain: FakeAdjudicator) -> None:
    channel = channel_id(FIXED)
    assert chain.holdings_of(channel) == {NATIVE: 0, TOKEN: 0}
    assert chain.balances == {
        (ALICE.address, NATIVE): 5,
        (BOB.address, NATIVE): 3,
        (BOB.address, TOKEN): 4,
        (ALICE.address, TOKEN): 2,
    }
    assert chain.deposited == chain.balances


def test_fund_then_defund_ends_with_everyone_paid() -> None:
    chain = FakeAdjudicator()
    alice, bob = parties = fund_parties()
    run_until_done(parties, chain)
    assert chain.holdings_of(channel_id(FIXED)) == {NATIVE: 8, TOKEN: 6}
    assert chain.deposits == 4  # each party, each asset
    for party in parties:
        supported = party.store.snapshot(chain).supported
        assert supported is not None
        assert supported.state.turn_num == 1
    start_defund(alice, bob, chain)
    run_until_done(parties, chain)
    assert all(isinstance(party.objective, DirectDefund) for party in parties)
    check_paid_out(chain)


def test_a_restart_after_every_crank_changes_nothing() -> None:
    chain = FakeAdjudicator()
    alice, bob = parties = fund_parties()
    for stage in ("fund", "defund"):
        if stage == "defund":
            start_defund(alice, bob, chain)
        for _ in range(20):
            for party in parties:
                party.crank(chain)
                rebuilt = rebuild(party, chain)
                assert rebuilt == party.objective
                party.objective = rebuilt
            moved = sum(deliver(party, parties) for party in parties)
            if moved == 0 and all(party.last is not None and party.last.done for party in parties):
                break
        assert all(party.last is not None and party.last.done for party in parties)
    check_paid_out(chain)


def test_a_deposit_run_again_after_a_crash_does_not_fund_twice() -> None:
    chain = FakeAdjudicator()
    alice, _bob = fund_parties()
    # Alice's prefund is complete on her side (Bob signed too).
    alice.crank(chain)
    prefund = alice.outbox.pop().signed_state
    alice.store.accept(BOB.countersign(prefund))
    alice.immediate = False
    result = alice.crank(chain)
    deposits = [effect for effect in result.effects if isinstance(effect, SubmitDeposit)]
    assert [d.asset for d in deposits] == [NATIVE]
    alice.submit_pending(chain)
    # A crash lost the record of the submission. The rebuilt objective sees the
    # deposit in the holdings and asks for nothing; and the old effect, run again,
    # is refused by the adjudicator because the holdings moved on.
    alice.objective = new_direct_fund(FIXED, OUTCOME, ALICE.address, CONSENSUS_APP)
    alice.events = []
    repeat = alice.crank(chain)
    assert not any(isinstance(effect, SubmitDeposit) for effect in repeat.effects)
    assert not chain.deposit(deposits[0], ALICE.address)
    assert chain.holdings_of(channel_id(FIXED)) == {NATIVE: 5}
