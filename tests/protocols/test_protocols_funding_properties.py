"""Property tests of DirectFund: random outcomes, random schedules of cranks,
deliveries, slow transactions and restarts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.core import SingleAssetExit, address_to_destination, channel_id
from node.protocols import Objective, funding_thresholds, new_direct_fund, update
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

ASSETS = (NATIVE, TOKEN, "0x00000000000000000000000000000000000000BB")
FIXED = ledger_fixed()
amounts = st.integers(min_value=0, max_value=10**20)


@st.composite
def outcomes(draw: st.DrawFn) -> tuple[SingleAssetExit, ...]:
    """1-3 assets; per asset, Alice and Bob in a random order with random amounts."""
    assets = draw(st.lists(st.sampled_from(ASSETS), min_size=1, max_size=3, unique=True))
    exits = []
    for asset in assets:
        order = draw(st.permutations([ALICE, BOB]))
        exits.append(simple_exit(asset, [(signer, draw(amounts)) for signer in order]))
    return tuple(exits)


steps = st.lists(
    st.tuples(st.sampled_from(["crank", "deliver", "chain", "restart"]), st.integers(0, 1)),
    max_size=40,
)


def restart(party: Party, outcome: tuple[SingleAssetExit, ...]) -> None:
    objective: Objective = new_direct_fund(FIXED, outcome, party.signer.address, CONSENSUS_APP)
    for event in party.events:
        objective = update(objective, event)
    assert objective == party.objective
    party.objective = objective


@settings(max_examples=60, deadline=None)
@given(outcome=outcomes(), schedule=steps)
def test_everyone_deposits_their_share_in_turn(
    outcome: tuple[SingleAssetExit, ...], schedule: list[tuple[str, int]]
) -> None:
    chain = FakeAdjudicator()
    parties = [
        Party(
            signer,
            new_direct_fund(FIXED, outcome, signer.address, CONSENSUS_APP),
            FakeChannelStore(FIXED),
            immediate=False,
        )
        for signer in (ALICE, BOB)
    ]
    for action, index in schedule:
        party = parties[index]
        if action == "crank":
            party.crank(chain)
        elif action == "deliver":
            deliver(party, parties)
        elif action == "chain":
            party.submit_pending(chain)
        else:
            restart(party, outcome)
    run_until_done(parties, chain)

    channel = channel_id(FIXED)
    for asset_exit in outcome:
        total = sum(allocation.amount for allocation in asset_exit.allocations)
        assert chain.holdings_of(channel).get(asset_exit.asset, 0) == total
        for signer in (ALICE, BOB):
            threshold, target = funding_thresholds(
                asset_exit, address_to_destination(signer.address)
            )
            deposited = chain.deposited.get((signer.address, asset_exit.asset), 0)
            assert deposited == target - threshold
    for depositor, asset, held_before, amount in chain.deposit_log:
        assert amount > 0
        (asset_exit,) = [exit_ for exit_ in outcome if exit_.asset == asset]
        threshold, _ = funding_thresholds(asset_exit, address_to_destination(depositor))
        assert held_before >= threshold, "a deposit before its turn"
    # Each party deposits at most once per asset.
    depositors = [(depositor, asset) for depositor, asset, _, _ in chain.deposit_log]
    assert len(depositors) == len(set(depositors))
