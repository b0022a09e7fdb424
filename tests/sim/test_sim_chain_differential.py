"""Differential: the simulated chain against the real contracts on anvil.

The same scenarios (``sim_chain_scenarios``), through the same ``ChainService``
interface the engine uses, leave the same results and revert reasons, holdings,
status words, payouts, raw logs and watcher events on both, byte for byte."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from node.chain import (
    TEST_TOKEN,
    Anvil,
    ChainClient,
    ChainService,
    Deployment,
    deploy_contracts,
    load_artifact,
    running_anvil,
)
from tests.actors import dev_key
from tests.sim.sim_adjudicator import NATIVE, Contracts, WorldState
from tests.sim.sim_chain import SimChain, SimChainService
from tests.sim.sim_chain_scenarios import (
    TOKEN_FUNDS,
    Observed,
    observe_anvil,
    observe_sim,
    run_scenarios,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
START_OFFSET_S = 1_000


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with running_anvil() as running:
        yield running


@pytest.fixture(scope="module")
def deployment(anvil: Anvil) -> Deployment:
    return deploy_contracts(ChainClient(anvil.url, dev_key(0)), token_supply=10**27)


def contracts_of(deployment: Deployment) -> Contracts:
    assert deployment.token is not None
    return Contracts(
        deployment.adjudicator,
        deployment.consensus_app,
        deployment.virtual_payment_app,
        deployment.token,
    )


class AnvilBackend:
    def __init__(self, anvil: Anvil, deployment: Deployment) -> None:
        self.contracts = contracts_of(deployment)
        self.client = ChainClient(anvil.url, dev_key(0), deployment.adjudicator)
        self.first = ChainService(ChainClient(anvil.url, dev_key(1), deployment.adjudicator))
        self.second = ChainService(ChainClient(anvil.url, dev_key(2), deployment.adjudicator))

    async def skip_time(self, seconds: int) -> None:
        latest = self.client.w3.eth.get_block("latest")
        self.client.rpc("time", "evm_setNextBlockTimestamp", int(latest["timestamp"]) + seconds)
        self.client.rpc("mine", "evm_mine")


class SimBackend:
    def __init__(self, chain: SimChain, first: str, second: str) -> None:
        self.contracts = chain.contracts
        self.chain = chain
        self.first = SimChainService(chain, first)
        self.second = SimChainService(chain, second)

    async def skip_time(self, seconds: int) -> None:
        self.chain.skip_time(seconds)


@pytest.fixture(scope="module")
def runs(anvil: Anvil, deployment: Deployment) -> tuple[Observed, Observed]:
    real = AnvilBackend(anvil, deployment)
    client = real.client
    token = client.contract(load_artifact(TEST_TOKEN), real.contracts.token)
    first, second = real.first.address, real.second.address
    client.transact("fund", token.functions.transfer(first, TOKEN_FUNDS))
    snapshot = client.rpc("snapshot", "evm_snapshot")
    try:
        head = client.w3.eth.get_block("latest")
        number, time_s = int(head["number"]), int(head["timestamp"])
        state = WorldState()
        for address in (first, second):
            state.balances[(NATIVE, address)] = 10**24
        state.balances[(real.contracts.token, first)] = TOKEN_FUNDS
        chain = SimChain(
            state, contracts=real.contracts, genesis_time_s=time_s - number, automine=True
        )
        while chain.head.number < number:
            chain.mine(0)
        assert (chain.head.number, chain.head.time_s) == (number, time_s)
        simulated = SimBackend(chain, first, second)

        async def both() -> tuple[Observed, Observed]:
            await real.skip_time(START_OFFSET_S)
            client.rpc("time", "anvil_setBlockTimestampInterval", 1)
            await simulated.skip_time(START_OFFSET_S)
            ours = observe_anvil(client, await run_scenarios(real), number + 1)
            model = observe_sim(chain, await run_scenarios(simulated), number + 1)
            return ours, model

        return trio.run(both)
    finally:
        client.rpc("time", "anvil_removeBlockTimestampInterval")
        client.rpc("revert", "evm_revert", snapshot)


def test_every_step_succeeds_or_fails_alike(runs: tuple[Observed, Observed]) -> None:
    real, model = runs
    assert model.steps == real.steps
    failed = [name for name, result in real.steps if result != "ok"]
    assert len(failed) >= 20  # the scenarios do reach the error paths
    assert len(real.steps) - len(failed) >= 25


def test_holdings_statuses_and_payouts_are_equal(runs: tuple[Observed, Observed]) -> None:
    real, model = runs
    assert model.holdings == real.holdings
    assert model.statuses == real.statuses
    assert model.balances == real.balances
    assert sum(amount for _, _, amount in real.balances) > 0


def test_raw_logs_and_watcher_events_are_equal(runs: tuple[Observed, Observed]) -> None:
    real, model = runs
    assert model.logs == real.logs
    assert model.events == real.events
    assert len(real.events) >= 35
