"""The simulated chain on its own: the scenarios' results, the mempool's faults, and
the node's ChainWatcher reading confirmations and reorgs from it."""

from __future__ import annotations

import random

import trio
from web3 import Web3

from node.chain import ChainWatcher
from node.core.errors import ChainError
from node.proto import log_pb2
from tests.sim.sim_adjudicator import NATIVE, WorldState
from tests.sim.sim_chain import SIM_CONTRACTS, ChainFaults, SimChain, SimChainService, SimClient
from tests.sim.sim_chain_scenarios import TOKEN_FUNDS, run_scenarios

FIRST = Web3.to_checksum_address("0x" + "11" * 20)
SECOND = Web3.to_checksum_address("0x" + "22" * 20)
CHANNEL = bytes([0xCC]) * 32


def funded() -> WorldState:
    state = WorldState()
    state.balances[(NATIVE, FIRST)] = 10**24
    state.balances[(NATIVE, SECOND)] = 10**24
    state.balances[(SIM_CONTRACTS.token, FIRST)] = TOKEN_FUNDS
    return state


class Backend:
    def __init__(self, chain: SimChain) -> None:
        self.contracts = chain.contracts
        self.chain = chain
        self.first = SimChainService(chain, FIRST)
        self.second = SimChainService(chain, SECOND)

    async def skip_time(self, seconds: int) -> None:
        self.chain.skip_time(seconds)


def test_the_scenarios_reach_success_and_every_kind_of_refusal() -> None:
    run = trio.run(run_scenarios, Backend(SimChain(funded(), automine=True)))
    results = dict(run.steps)
    assert results["deposit held mismatch"] == "deposit: reverted: held != expectedHeld"
    assert results["challenge stale"] == "challenge: reverted: turnNumRecord decreased."
    assert results["reclaim"] == "ok"
    assert results["challenge voucher overpaid"].endswith("Alice not adjusted correctly")
    assert results["transfer ledger (after reclaim)"] == "ok"
    assert sum(result == "ok" for result in results.values()) >= 25


def test_a_run_is_a_function_of_its_inputs() -> None:
    first = trio.run(run_scenarios, Backend(chain_a := SimChain(funded(), automine=True)))
    second = trio.run(run_scenarios, Backend(chain_b := SimChain(funded(), automine=True)))
    assert first.steps == second.steps
    assert [b.hash for b in chain_a.blocks] == [b.hash for b in chain_b.blocks]


async def test_a_dropped_transaction_is_sent_again(autojump_clock: trio.testing.MockClock) -> None:
    chain = SimChain(funded(), faults=ChainFaults(drop=1.0))
    service = SimChainService(chain, FIRST)
    sent: list[bytes] = []

    async def on_submitted(submitted: object) -> None:
        sent.append(submitted.tx_hash)  # type: ignore[attr-defined]

    async def miner() -> None:
        while True:
            await trio.sleep(1)
            if len(sent) >= 2:
                chain.faults = ChainFaults()
            chain.mine(int(trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(miner)
        result = await service.deposit(NATIVE, CHANNEL, 0, 5, on_submitted=on_submitted)
        nursery.cancel_scope.cancel(reason="mined")
    assert len(sent) == 2
    assert result.tx_hash == sent[1]
    assert chain.transaction_state(sent[0]) == "unknown"
    assert chain.transaction_state(sent[1]) == "mined"
    assert chain.state.held(NATIVE, CHANNEL) == 5


async def test_a_transaction_that_reverts_when_mined_says_so() -> None:
    chain = SimChain(funded())
    first, second = SimChainService(chain, FIRST), SimChainService(chain, SECOND)
    failures: list[str] = []

    async def late_deposit() -> None:
        try:
            await second.deposit(NATIVE, CHANNEL, 0, 7)
        except ChainError as error:
            failures.append(str(error))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first.deposit, NATIVE, CHANNEL, 0, 5)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(late_deposit)  # its dry run passes: the first is not mined yet
        await trio.testing.wait_all_tasks_blocked()
        chain.mine(10)
    assert len(failures) == 1
    assert failures[0].endswith("reverted in block 1 (held != expectedHeld)")
    assert chain.state.held(NATIVE, CHANNEL) == 5


def test_the_watcher_sees_a_reorg_as_blocks_reverted() -> None:
    chain = SimChain(funded(), rng=random.Random(1))
    service = SimChainService(chain, FIRST)
    watcher = ChainWatcher(SimClient(chain), from_block=1)  # type: ignore[arg-type]

    def deposit(expected: int, amount: int) -> None:
        tx = chain.new_tx(
            FIRST,
            SIM_CONTRACTS.adjudicator,
            "deposit",
            (NATIVE, CHANNEL, expected, amount),
            amount,
            "deposit",
        )
        chain.submit(tx)

    deposit(0, 5)
    chain.mine(10)
    deposit(5, 1)
    chain.mine(11)
    first = watcher.poll().events
    assert [e.WhichOneof("event") for e in first] == ["deposited", "deposited", "block_processed"]
    chain.reorg(1)  # the second deposit goes back to the mempool
    chain.mine(20)
    chain.mine(21)
    again = watcher.poll().events
    kinds = [e.WhichOneof("event") for e in again]
    assert kinds == ["blocks_reverted", "deposited", "block_processed"]
    assert again[0].blocks_reverted.first_block == 2
    assert again[1].block_number == 2
    assert chain.reorgs == 1
    assert service.address == FIRST


def test_the_watcher_waits_for_confirmations() -> None:
    chain = SimChain(funded())
    watcher = ChainWatcher(SimClient(chain), from_block=1, confirmations=2)  # type: ignore[arg-type]
    tx = chain.new_tx(
        FIRST, SIM_CONTRACTS.adjudicator, "deposit", (NATIVE, CHANNEL, 0, 5), 5, "deposit"
    )
    chain.submit(tx)
    chain.mine(10)
    assert watcher.poll().events == ()
    chain.mine(11)
    chain.mine(12)
    events = watcher.poll().events
    assert isinstance(events[0], log_pb2.ChainEvent)
    assert [e.WhichOneof("event") for e in events] == ["deposited", "block_processed"]
