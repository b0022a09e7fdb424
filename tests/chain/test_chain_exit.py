"""Exits on anvil: the happy path, challenges, checkpoints and stale states."""

from __future__ import annotations

from dataclasses import replace

import pytest

from node.chain import (
    NATIVE_ASSET,
    ChainService,
    ChainWatcher,
    ReclaimRequest,
    encode_outcome,
    fixed_part_tuple,
    sign_state_tuples,
    signature_tuple,
)
from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
)
from node.core.errors import ChainError
from tests.actors import ALICE, BOB, IRENE
from tests.chain.conftest import Chain

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def outcome(asset: str, alice: int, bob: int) -> SingleAssetExit:
    return SingleAssetExit(
        asset,
        [
            Allocation(address_to_destination(ALICE.address), alice),
            Allocation(address_to_destination(BOB.address), bob),
        ],
    )


def signed(
    fixed: FixedPart, exits: list[SingleAssetExit], turn: int, *, final: bool = False
) -> SignedState:
    """A state signed by both Alice and Bob with node.core."""
    state = State(fixed, b"", exits, turn, final)
    return SignedState(state, {0: ALICE.sign_state(state), 1: BOB.sign_state(state)})


async def fund(chain: Chain, fixed: FixedPart, amounts: dict[str, int]) -> None:
    service = chain.service(1)
    for asset, amount in amounts.items():
        if asset != NATIVE_ASSET:
            chain.fund_token(service.address, amount)
        await service.deposit(asset, channel_id(fixed), 0, amount)


async def test_happy_exit_pays_both_assets_and_clears_the_channel(chain: Chain) -> None:
    token = chain.deployment.token
    assert token is not None
    fixed = chain.fixed(nonce=10)
    cid = channel_id(fixed)
    await fund(chain, fixed, {NATIVE_ASSET: 10, token: 100})
    service = chain.service(2)
    alice_before, bob_before = (
        chain.client(0).balance(ALICE.address),
        chain.client(0).balance(BOB.address),
    )
    final = signed(fixed, [outcome(NATIVE_ASSET, 6, 4), outcome(token, 30, 70)], 3, final=True)
    result = await service.conclude_and_transfer_all_assets(final)
    assert result.gas_used > 0
    assert chain.client(0).balance(ALICE.address) - alice_before == 6
    assert chain.client(0).balance(BOB.address) - bob_before == 4
    assert chain.token_balance(ALICE.address) == 30
    assert chain.token_balance(BOB.address) == 70
    assert await service.holdings(NATIVE_ASSET, cid) == 0
    assert await service.holdings(token, cid) == 0
    status = await service.status(cid)
    assert (status.turn_num_record, status.finalizes_at, status.fingerprint) == (0, 0, 0)


async def test_underfunded_exit_pays_in_order_and_keeps_the_rest_owed(chain: Chain) -> None:
    fixed = chain.fixed(nonce=11)
    cid = channel_id(fixed)
    await fund(chain, fixed, {NATIVE_ASSET: 7})
    service = chain.service(2)
    bob_before = chain.client(0).balance(BOB.address)
    await service.conclude_and_transfer_all_assets(
        signed(fixed, [outcome(NATIVE_ASSET, 5, 5)], 4, final=True)
    )
    assert chain.client(0).balance(BOB.address) - bob_before == 2
    assert await service.holdings(NATIVE_ASSET, cid) == 0
    status = await service.status(cid)
    assert status.finalizes_at > 0
    assert status.fingerprint != 0


async def test_conclude_needs_a_final_state_signed_by_everyone(chain: Chain) -> None:
    fixed = chain.fixed(nonce=12)
    service = chain.service(2)
    with pytest.raises(ChainError, match="not final"):
        await service.conclude_and_transfer_all_assets(
            signed(fixed, [outcome(NATIVE_ASSET, 1, 1)], 3)
        )
    state = State(fixed, b"", [outcome(NATIVE_ASSET, 1, 1)], 3, True)
    only_alice = SignedState(state, {0: ALICE.sign_state(state)})
    with pytest.raises(ChainError, match=r"reverted: !unanimous$"):
        await service.conclude_and_transfer_all_assets(only_alice)


async def test_challenge_then_transfer_after_the_timeout(chain: Chain) -> None:
    fixed = chain.fixed(nonce=13, duration=100)
    cid = channel_id(fixed)
    await fund(chain, fixed, {NATIVE_ASSET: 10})
    service = chain.service(2)
    candidate = signed(fixed, [outcome(NATIVE_ASSET, 3, 7)], 5)
    await service.challenge(candidate, BOB.sign_challenge(candidate.state))
    status = await service.status(cid)
    assert status.turn_num_record == 5
    assert status.finalizes_at > 0
    with pytest.raises(ChainError, match=r"^transferAllAssets: reverted: Channel not finalized\.$"):
        await service.transfer_all_assets(candidate.state)
    chain.increase_time(101)
    alice_before = chain.client(0).balance(ALICE.address)
    await service.transfer_all_assets(candidate.state)
    assert chain.client(0).balance(ALICE.address) - alice_before == 3
    assert await service.holdings(NATIVE_ASSET, cid) == 0


async def test_checkpoint_with_a_newer_state_clears_the_challenge(chain: Chain) -> None:
    fixed = chain.fixed(nonce=14)
    cid = channel_id(fixed)
    service = chain.service(2)
    old = signed(fixed, [outcome(NATIVE_ASSET, 3, 7)], 5)
    await service.challenge(old, ALICE.sign_challenge(old.state))
    newer = signed(fixed, [outcome(NATIVE_ASSET, 8, 2)], 6)
    await service.checkpoint(newer)
    status = await service.status(cid)
    assert (status.turn_num_record, status.finalizes_at) == (6, 0)
    chain.increase_time(1000)
    with pytest.raises(ChainError, match="Channel not finalized"):
        await service.transfer_all_assets(old.state)


async def test_a_stale_state_cannot_win(chain: Chain) -> None:
    fixed = chain.fixed(nonce=15)
    service = chain.service(2)
    newer = signed(fixed, [outcome(NATIVE_ASSET, 8, 2)], 6)
    await service.challenge(newer, BOB.sign_challenge(newer.state))
    stale = signed(fixed, [outcome(NATIVE_ASSET, 0, 10)], 5)
    with pytest.raises(ChainError, match=r"^challenge: reverted: turnNumRecord not increased\.$"):
        await service.challenge(stale, BOB.sign_challenge(stale.state))
    with pytest.raises(ChainError, match=r"^checkpoint: reverted: turnNumRecord not increased\.$"):
        await service.checkpoint(stale)
    chain.increase_time(61)
    with pytest.raises(ChainError, match=r"^challenge: reverted: Channel finalized\.$"):
        await service.challenge(stale, BOB.sign_challenge(stale.state))


async def test_challenger_must_be_a_participant(chain: Chain) -> None:
    fixed = chain.fixed(nonce=16)
    service = chain.service(2)
    candidate = signed(fixed, [outcome(NATIVE_ASSET, 1, 1)], 2)
    with pytest.raises(ChainError, match="Challenger is not a participant"):
        await service.challenge(candidate, IRENE.sign_challenge(candidate.state))


async def test_state_is_supported_asks_the_app(chain: Chain) -> None:
    fixed = chain.fixed(nonce=17)
    service: ChainService = chain.service(2)
    both = signed(fixed, [outcome(NATIVE_ASSET, 1, 1)], 2)
    assert await service.state_is_supported(both) == (True, "")
    state = both.state
    with pytest.raises(ChainError, match=r"reverted: !unanimous$"):
        await service.state_is_supported(SignedState(state, {1: BOB.sign_state(state)}))


async def test_reclaim_folds_a_finalized_guarantee_back_into_the_ledger(chain: Chain) -> None:
    """Ledger (Alice, Irene) guarantees virtual channel (Alice, Irene, Bob) with an
    exit-format guarantee (type 2), built at the ABI level."""
    ledger = FixedPart([ALICE.address, IRENE.address], 30, chain.deployment.consensus_app, 60)
    virtual = FixedPart(
        [ALICE.address, IRENE.address, BOB.address], 31, chain.deployment.virtual_payment_app, 60
    )
    lid, vid = channel_id(ledger), channel_id(virtual)
    alice, irene, bob = (address_to_destination(s.address) for s in (ALICE, IRENE, BOB))
    metadata = alice + irene
    ledger_outcome = [
        (NATIVE_ASSET, (0, b""), [(alice, 5, 0, b""), (irene, 5, 0, b""), (vid, 10, 2, metadata)])
    ]
    virtual_outcome = [(NATIVE_ASSET, (0, b""), [(alice, 7, 0, b""), (bob, 3, 0, b"")])]
    service = chain.service(2)
    await service.deposit(NATIVE_ASSET, lid, 0, 20)
    for fixed, outcome_, signers in (
        (ledger, ledger_outcome, [ALICE, IRENE]),
        (virtual, virtual_outcome, [ALICE, IRENE, BOB]),
    ):
        fixed_tuple = fixed_part_tuple(State(fixed, b"", [], 0, False))
        variable = (outcome_, b"", 4, True)
        sigs = [
            signature_tuple(sign_state_tuples(fixed_tuple, variable, s.private_key))
            for s in signers
        ]
        client = service.client
        client.transact(
            "conclude",
            client.require_adjudicator().functions.conclude(fixed_tuple, (variable, sigs)),
        )
    request = ReclaimRequest(
        source_channel_id=lid,
        source_state_hash=bytes(32),
        source_outcome=encode_outcome(ledger_outcome),
        source_asset_index=0,
        index_of_target_in_source=2,
        target_state_hash=bytes(32),
        target_outcome=encode_outcome(virtual_outcome),
        target_asset_index=0,
    )
    with pytest.raises(ChainError, match=r"^reclaim: reverted: not a guarantee allocation$"):
        await service.reclaim(replace(request, index_of_target_in_source=0))
    await service.reclaim(request)
    folded = [(NATIVE_ASSET, (0, b""), [(alice, 12, 0, b""), (irene, 8, 0, b"")])]
    before = chain.client(0).balance(IRENE.address)
    paid = await service.transfer(0, lid, encode_outcome(folded), bytes(32), [1])
    assert chain.client(0).balance(IRENE.address) - before == 8
    assert await service.holdings(NATIVE_ASSET, lid) == 12
    events = ChainWatcher(chain.client(0), from_block=paid.block_number - 1).poll().events
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds == ["reclaimed", "allocation_updated", "block_processed"]
    assert events[0].reclaimed.channel_id == lid
    update = events[1].allocation_updated
    assert (update.channel_id, update.asset_index, update.asset) == (lid, 0, bytes(20))


async def test_conclude_then_transfer_all_assets(chain: Chain) -> None:
    fixed = chain.fixed(nonce=18)
    cid = channel_id(fixed)
    await fund(chain, fixed, {NATIVE_ASSET: 10})
    service = chain.service(2)
    final = signed(fixed, [outcome(NATIVE_ASSET, 1, 9)], 4, final=True)
    await service.conclude(final)
    assert await service.holdings(NATIVE_ASSET, cid) == 10
    with pytest.raises(ChainError, match=r"^transferAllAssets: reverted: incorrect fingerprint$"):
        await service.transfer_all_assets(final.state)
    bob_before = chain.client(0).balance(BOB.address)
    await service.transfer_all_assets(final.state, by_conclude=True)
    assert chain.client(0).balance(BOB.address) - bob_before == 9
    assert await service.holdings(NATIVE_ASSET, cid) == 0
    with pytest.raises(ChainError, match=r"^conclude: reverted: !unanimous$"):
        await service.conclude(SignedState(final.state, {0: ALICE.sign_state(final.state)}))
