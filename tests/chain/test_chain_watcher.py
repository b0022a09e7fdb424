"""The chain watcher: confirmed events as ChainEvent records, back-fill, reorgs."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from node.chain import (
    BLOCK_PROCESSED_LOG_INDEX,
    NATIVE_ASSET,
    Artifact,
    ChainClient,
    ChainWatcher,
    fixed_part_tuple,
    signature_tuple,
    signed_variable_part,
)
from node.core import (
    Allocation,
    SignedState,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    constants,
    fixed_part_to_proto,
    signed_state_from_proto,
    state_to_proto,
)
from node.core.errors import ChainError
from node.proto import log_pb2, nitro_pb2
from tests.actors import ALICE, BOB, dev_key
from tests.chain.conftest import Chain
from tests.chain.solidity import FORWARDER_SOURCE, compile_contract

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def kinds(events: list[log_pb2.ChainEvent]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


def variable_part(state: State) -> nitro_pb2.VariablePart:
    whole = state_to_proto(state)
    return nitro_pb2.VariablePart(
        outcome=whole.outcome,
        app_data=whole.app_data,
        turn_num=whole.turn_num,
        is_final=whole.is_final,
    )


def final_state(chain: Chain, nonce: int, alice: int, bob: int, turn: int = 3) -> SignedState:
    fixed = chain.fixed(nonce=nonce)
    exit_ = SingleAssetExit(
        NATIVE_ASSET,
        [
            Allocation(address_to_destination(ALICE.address), alice),
            Allocation(address_to_destination(BOB.address), bob),
        ],
    )
    state = State(fixed, b"", [exit_], turn, True)
    return SignedState(state, {0: ALICE.sign_state(state), 1: BOB.sign_state(state)})


async def test_events_of_one_transaction_all_arrive_in_order(chain: Chain) -> None:
    start = chain.client(0).block_number() + 1
    final = final_state(chain, 20, 4, 6)
    cid = channel_id(final.state.fixed)
    service = chain.service(1)
    await service.deposit(NATIVE_ASSET, cid, 0, 10)
    exit_tx = await service.conclude_and_transfer_all_assets(final)
    watcher = ChainWatcher(chain.client(0), from_block=start)
    batch = watcher.poll()
    events = [e for e in batch.events if e.WhichOneof("event") != "block_processed"]
    assert kinds(events) == ["deposited", "concluded", "allocation_updated"]
    deposited, concluded, updated = events
    assert deposited.deposited.channel_id == cid
    assert deposited.deposited.asset == bytes(20)
    assert int.from_bytes(deposited.deposited.destination_holdings, "big") == 10
    assert concluded.concluded.channel_id == cid
    assert concluded.concluded.finalizes_at > 0
    assert concluded.tx_hash == updated.tx_hash == exit_tx.tx_hash
    assert concluded.block_number == updated.block_number == exit_tx.block_number
    assert concluded.log_index < updated.log_index
    assert updated.allocation_updated.asset == bytes(20)
    assert int.from_bytes(updated.allocation_updated.initial_holdings, "big") == 10
    assert int.from_bytes(updated.allocation_updated.final_holdings, "big") == 0
    assert all(e.block_time_s > 0 for e in batch.events)
    last = batch.events[-1]
    assert last.WhichOneof("event") == "block_processed"
    assert last.block_processed.block_number == exit_tx.block_number == batch.last_block
    assert last.log_index == BLOCK_PROCESSED_LOG_INDEX
    assert batch.caught_up


async def test_challenge_event_carries_the_signed_candidate(chain: Chain) -> None:
    start = chain.client(0).block_number() + 1
    final = final_state(chain, 21, 4, 6, turn=7)
    candidate = SignedState(
        State(final.state.fixed, b"\x01\x02", final.state.outcome, 7, False), {}
    )
    candidate = ALICE.countersign(BOB.countersign(candidate))
    service = chain.service(1)
    await service.challenge(candidate, ALICE.sign_challenge(candidate.state))
    await service.checkpoint(
        ALICE.countersign(
            BOB.countersign(
                SignedState(State(candidate.state.fixed, b"", candidate.state.outcome, 8, False))
            )
        )
    )
    batch = ChainWatcher(chain.client(0), from_block=start).poll()
    registered, cleared, _ = batch.events
    assert kinds(list(batch.events)) == [
        "challenge_registered",
        "challenge_cleared",
        "block_processed",
    ]
    message = registered.challenge_registered
    assert message.channel_id == channel_id(candidate.state.fixed)
    assert signed_state_from_proto(message.candidate) == candidate
    assert message.candidate_part == variable_part(candidate.state)
    assert list(message.candidate_signatures) == [sig for _, sig in candidate.signatures]
    assert cleared.challenge_cleared.new_turn_num_record == 8


@pytest.fixture(scope="module")
def forwarder_artifact() -> Artifact:
    return compile_contract(FORWARDER_SOURCE, "Forwarder")


async def test_a_challenge_through_a_contract_still_carries_its_candidate(
    chain: Chain, forwarder_artifact: Artifact
) -> None:
    """A contract wallet's challenge: the transaction's input is the wallet's call,
    so only the event's own data tells the candidate (the fixed part is the channel's)."""
    client = chain.client(2)
    forwarder = client.contract(
        forwarder_artifact, str(client.deploy(forwarder_artifact).contract_address)
    )
    final = final_state(chain, 29, 4, 6, turn=5)
    candidate = SignedState(State(final.state.fixed, b"\x07", final.state.outcome, 5, False))
    candidate = ALICE.countersign(BOB.countersign(candidate))
    adjudicator = client.require_adjudicator()
    call = adjudicator.encode_abi(
        "challenge",
        args=[
            fixed_part_tuple(candidate.state),
            [],
            signed_variable_part(candidate),
            signature_tuple(BOB.sign_challenge(candidate.state)),
        ],
    )
    start = client.block_number() + 1
    sent = client.transact(
        "challenge via forwarder", forwarder.functions.forward(adjudicator.address, call)
    )
    events = list(ChainWatcher(chain.client(0), from_block=start).poll().events)
    assert kinds(events) == ["challenge_registered", "block_processed"]
    assert events[0].tx_hash == sent.tx_hash
    message = events[0].challenge_registered
    assert message.channel_id == channel_id(candidate.state.fixed)
    assert not message.HasField("candidate")  # the input is the forwarder's call
    assert message.candidate_part == variable_part(candidate.state)
    assert list(message.candidate_signatures) == [sig for _, sig in candidate.signatures]
    # With the channel's fixed part, that is the whole candidate again.
    whole = nitro_pb2.SignedState(
        state=nitro_pb2.State(
            fixed=fixed_part_to_proto(candidate.state.fixed),
            outcome=message.candidate_part.outcome,
            app_data=message.candidate_part.app_data,
            turn_num=message.candidate_part.turn_num,
            is_final=message.candidate_part.is_final,
        ),
        signatures=[
            nitro_pb2.ParticipantSignature(participant_index=index, signature=signature)
            for index, signature in enumerate(message.candidate_signatures)
        ],
    )
    assert signed_state_from_proto(whole) == candidate


async def test_restarted_watcher_back_fills_what_it_missed(chain: Chain) -> None:
    service = chain.service(1)
    cid = channel_id(chain.fixed(nonce=22))
    first = ChainWatcher(chain.client(0), from_block=chain.client(0).block_number() + 1)
    await service.deposit(NATIVE_ASSET, cid, 0, 1)
    seen = list(first.poll().events)
    last_processed = seen[-1].block_processed.block_number
    # The watcher is down while two more deposits happen.
    await service.deposit(NATIVE_ASSET, cid, 1, 2)
    await service.deposit(NATIVE_ASSET, cid, 3, 4)
    # Restart through the service, delivering into a bounded memory channel.
    restarted = partial(chain.service(0).run, from_block=last_processed + 1)
    send, receive = trio.open_memory_channel[log_pb2.ChainEvent](constants.chain_events_buffer_max)
    got: list[log_pb2.ChainEvent] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(restarted, send.send)
        async for event in receive:
            got.append(event)
            if event.WhichOneof("event") == "deposited":
                holdings = int.from_bytes(event.deposited.destination_holdings, "big")
                if holdings == 7:
                    nursery.cancel_scope.cancel()
    deposits = [
        int.from_bytes(e.deposited.destination_holdings, "big")
        for e in got
        if e.deposited.channel_id
    ]
    assert deposits == [3, 7]
    keys = [(e.block_number, e.log_index) for e in [*seen, *got]]
    assert keys == sorted(set(keys))


async def test_events_wait_for_confirmations_and_reorged_ones_never_arrive(chain: Chain) -> None:
    client = chain.client(0)
    service = chain.service(1)
    cid = channel_id(chain.fixed(nonce=23))
    watcher = ChainWatcher(client, from_block=client.block_number() + 1, confirmations=2)
    snapshot = client.rpc("snapshot", "evm_snapshot")
    tx = await service.deposit(NATIVE_ASSET, cid, 0, 5)
    assert watcher.poll().events == ()  # 0 confirmations so far
    chain.mine(1)
    assert watcher.poll().events == ()  # 1 confirmation
    # The deposit's block is dropped by a reorg before it is confirmed.
    assert client.rpc("revert", "evm_revert", snapshot) is True
    chain.mine(5)
    events = [e for e in watcher.poll().events if e.WhichOneof("event") != "block_processed"]
    assert events == []
    assert client.block_number() >= tx.block_number
    # A deposit that does get its confirmations is delivered.
    service = chain.service(1)
    await service.deposit(NATIVE_ASSET, cid, 0, 6)
    chain.mine(2)
    events = [e for e in watcher.poll().events if e.WhichOneof("event") == "deposited"]
    assert [int.from_bytes(e.deposited.destination_holdings, "big") for e in events] == [6]


def deposits_of(events: list[log_pb2.ChainEvent]) -> list[int]:
    return [
        int.from_bytes(e.deposited.destination_holdings, "big")
        for e in events
        if e.WhichOneof("event") == "deposited"
    ]


async def test_a_reorg_of_processed_blocks_is_reverted_then_read_again(chain: Chain) -> None:
    client = chain.client(0)
    cid = channel_id(chain.fixed(nonce=26))
    watcher = ChainWatcher(client, from_block=client.block_number() + 1, confirmations=0)
    snapshot = client.rpc("snapshot", "evm_snapshot")
    first = await chain.service(1).deposit(NATIVE_ASSET, cid, 0, 5)
    raw = client.w3.eth.get_raw_transaction(first.tx_hash)
    seen = list(watcher.poll().events)
    assert kinds(seen) == ["deposited", "block_processed"]
    assert seen[0].block_number == first.block_number
    # The deposit's block is replaced by others; the same transaction is mined later.
    assert client.rpc("revert", "evm_revert", snapshot) is True
    chain.mine(2)
    again = client.w3.eth.send_raw_transaction(raw)
    receipt = client.w3.eth.wait_for_transaction_receipt(again)
    assert bytes(again) == first.tx_hash
    assert receipt["blockNumber"] == first.block_number + 2
    events = list(watcher.poll().events)
    assert kinds(events) == ["blocks_reverted", "deposited", "block_processed"]
    reverted, deposited, processed = events
    assert reverted.block_number == reverted.blocks_reverted.first_block == first.block_number
    assert (deposited.block_number, deposited.tx_hash) == (receipt["blockNumber"], first.tx_hash)
    assert deposits_of(events) == [5]
    assert processed.block_processed.block_number == receipt["blockNumber"]
    # Nothing changed since: nothing more to say.
    assert kinds(list(watcher.poll().events)) == []


async def test_events_re_read_after_a_reorg_are_delivered_even_at_the_same_key(
    chain: Chain,
) -> None:
    """The chain after the reorg has another deposit at the same (block, log index):
    the watcher's de-duplication key moved back, so it is delivered."""
    client = chain.client(0)
    cid = channel_id(chain.fixed(nonce=27))
    got: list[log_pb2.ChainEvent] = []
    send, receive = trio.open_memory_channel[log_pb2.ChainEvent](constants.chain_events_buffer_max)
    watcher = ChainWatcher(client, from_block=client.block_number() + 1, poll_interval_ms=10)

    async def next_deposit() -> log_pb2.ChainEvent:
        async for event in receive:
            got.append(event)
            if event.WhichOneof("event") == "deposited":
                return event
        raise AssertionError("the watcher stopped")

    async with trio.open_nursery() as nursery:
        await nursery.start(watcher.run, send.send)
        snapshot = client.rpc("snapshot", "evm_snapshot")
        await chain.service(1).deposit(NATIVE_ASSET, cid, 0, 5)
        before = await next_deposit()
        assert client.rpc("revert", "evm_revert", snapshot) is True
        # A fresh client: the reverted chain has the sender's nonce back where it was.
        await chain.service(1).deposit(NATIVE_ASSET, cid, 0, 8)
        after = await next_deposit()
        nursery.cancel_scope.cancel(reason="both deposits seen")
    assert (after.block_number, after.log_index) == (before.block_number, before.log_index)
    assert after.tx_hash != before.tx_hash
    shown = [e for e in got if e.WhichOneof("event") != "block_processed"]
    assert kinds(shown) == ["deposited", "blocks_reverted", "deposited"]
    assert shown[1].blocks_reverted.first_block == before.block_number
    assert deposits_of(shown) == [5, 8]


async def test_a_reorg_deeper_than_the_confirmations_reverts_to_the_fork_point(
    chain: Chain,
) -> None:
    client = chain.client(0)
    service = chain.service(1)
    cid = channel_id(chain.fixed(nonce=28))
    watcher = ChainWatcher(client, from_block=client.block_number() + 1, confirmations=1)
    kept = await service.deposit(NATIVE_ASSET, cid, 0, 1)
    snapshot = client.rpc("snapshot", "evm_snapshot")
    await service.deposit(NATIVE_ASSET, cid, 1, 2)
    chain.mine(1)
    assert deposits_of(list(watcher.poll().events)) == [1, 3]
    # Two blocks are replaced, deeper than the confirmation: the second deposit's block and
    # one the watcher had not read.
    assert client.rpc("revert", "evm_revert", snapshot) is True
    chain.mine(4)
    events = list(watcher.poll().events)
    assert kinds(events) == ["blocks_reverted", "block_processed"]
    assert events[0].blocks_reverted.first_block == kept.block_number + 1
    assert events[1].block_processed.block_number == client.block_number() - 1


async def test_a_reorg_deeper_than_the_window_is_an_error(chain: Chain) -> None:
    client = chain.client(0)
    watcher = ChainWatcher(client, from_block=client.block_number() + 1, reorg_window_blocks=2)
    snapshot = client.rpc("snapshot", "evm_snapshot")
    for _ in range(3):
        chain.mine(1)
        assert watcher.poll().last_block == client.block_number()
    client.rpc("revert", "evm_revert", snapshot)
    chain.mine(4)
    with pytest.raises(
        ChainError, match=r"reorg deeper than the watcher's window: .*\(\d+\.\.\d+\)"
    ):
        watcher.poll()


async def test_a_reorg_below_the_block_before_from_block_is_an_error(chain: Chain) -> None:
    """A (re)started watcher remembers blocks from the one before ``from_block`` on:
    a fork below that, in blocks some earlier watcher processed, is an error."""
    client = chain.client(0)
    snapshot = client.rpc("snapshot", "evm_snapshot")
    chain.mine(3)
    watcher = ChainWatcher(client, from_block=client.block_number(), confirmations=0)
    watcher.poll()
    client.rpc("revert", "evm_revert", snapshot)
    chain.mine(4)
    with pytest.raises(ChainError, match="reorg deeper than the watcher's window"):
        watcher.poll()


async def test_events_already_handled_are_skipped(chain: Chain) -> None:
    service = chain.service(1)
    cid = channel_id(chain.fixed(nonce=24))
    start = chain.client(0).block_number() + 1
    await service.deposit(NATIVE_ASSET, cid, 0, 1)
    await service.deposit(NATIVE_ASSET, cid, 1, 1)
    everything = [
        e
        for e in ChainWatcher(chain.client(0), from_block=start).poll().events
        if e.deposited.channel_id
    ]
    first = everything[0]
    again = ChainWatcher(
        chain.client(0), from_block=start, after=(first.block_number, first.log_index)
    ).poll()
    assert [e for e in again.events if e.deposited.channel_id] == everything[1:]


async def test_large_ranges_are_read_in_chunks(chain: Chain) -> None:
    client = chain.client(0)
    start = client.block_number() + 1
    chain.mine(10)
    watcher = ChainWatcher(client, from_block=start, blocks_per_query=4)
    processed = []
    while True:
        batch = watcher.poll()
        if batch.last_block is None:
            break
        processed.append(batch.last_block)
    assert processed == [start + 3, start + 7, start + 9]


async def test_allocation_updates_name_their_asset(chain: Chain) -> None:
    token = chain.deployment.token
    assert token is not None
    service = chain.service(1)
    fixed = chain.fixed(nonce=25)
    cid = channel_id(fixed)
    chain.fund_token(service.address, 9)
    await service.deposit(token, cid, 0, 9)
    await service.deposit(NATIVE_ASSET, cid, 0, 1)
    start = chain.client(0).block_number() + 1
    exits = [
        SingleAssetExit(NATIVE_ASSET, [Allocation(address_to_destination(BOB.address), 1)]),
        SingleAssetExit(token, [Allocation(address_to_destination(ALICE.address), 9)]),
    ]
    state = State(fixed, b"", exits, 2, True)
    final = SignedState(state, {0: ALICE.sign_state(state), 1: BOB.sign_state(state)})
    await service.conclude_and_transfer_all_assets(final)
    updates = [
        e.allocation_updated
        for e in ChainWatcher(chain.client(0), from_block=start).poll().events
        if e.WhichOneof("event") == "allocation_updated"
    ]
    assert [(u.asset_index, u.asset) for u in updates] == [
        (0, bytes(20)),
        (1, bytes.fromhex(token[2:])),
    ]


async def test_watcher_keeps_retrying_while_the_rpc_is_down(chain: Chain) -> None:
    dead = ChainClient("http://127.0.0.1:9", dev_key(0), chain.deployment.adjudicator)
    watcher = ChainWatcher(dead, poll_interval_ms=10)
    delivered: list[log_pb2.ChainEvent] = []

    async def deliver(event: log_pb2.ChainEvent) -> None:
        delivered.append(event)

    with trio.move_on_after(0.5):
        await watcher.run(deliver)
    assert watcher.unreachable_polls >= 2
    assert delivered == []
    with pytest.raises(ChainError, match=r"^watch adjudicator events: chain not reachable"):
        watcher.poll()
