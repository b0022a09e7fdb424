"""Shared anvil fixtures: one anvil and one deployment per test module, and a
chain snapshot per test (evm_snapshot / evm_revert) so tests do not see each
other's transactions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from node.chain import (
    Anvil,
    ChainClient,
    ChainService,
    Deployment,
    deploy_contracts,
    load_artifact,
    running_anvil,
)
from node.core import FixedPart
from tests.actors import ALICE, BOB, dev_key

TOKEN_SUPPLY = 10**27


@dataclass
class Chain:
    """One test's view of the module's anvil."""

    anvil: Anvil
    deployment: Deployment

    def client(self, index: int) -> ChainClient:
        return ChainClient(self.anvil.url, dev_key(index), self.deployment.adjudicator)

    def service(self, index: int) -> ChainService:
        return ChainService(self.client(index))

    def increase_time(self, seconds: int) -> None:
        client = self.client(0)
        client.rpc("increase time", "evm_increaseTime", seconds)
        client.rpc("mine", "evm_mine")

    def mine(self, blocks: int) -> None:
        self.client(0).rpc("mine", "anvil_mine", hex(blocks))

    def fund_token(self, address: str, amount: int) -> None:
        """Sends test tokens from the deployer to ``address``."""
        client = self.client(0)
        assert self.deployment.token is not None
        token = client.contract(load_artifact("TestToken"), self.deployment.token)
        client.transact("fund", token.functions.transfer(address, amount))

    def token_balance(self, address: str) -> int:
        client = self.client(0)
        assert self.deployment.token is not None
        token = client.contract(load_artifact("TestToken"), self.deployment.token)
        return int(client.call("balanceOf", token.functions.balanceOf(address)))

    def fixed(self, *, nonce: int, duration: int = 60, app: str | None = None) -> FixedPart:
        """A two-party (Alice, Bob) consensus channel."""
        return FixedPart(
            [ALICE.address, BOB.address], nonce, app or self.deployment.consensus_app, duration
        )


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with running_anvil() as running:
        yield running


@pytest.fixture(scope="module")
def deployment(anvil: Anvil) -> Deployment:
    return deploy_contracts(ChainClient(anvil.url, dev_key(0)), token_supply=TOKEN_SUPPLY)


@pytest.fixture
def chain(anvil: Anvil, deployment: Deployment) -> Iterator[Chain]:
    client = ChainClient(anvil.url, dev_key(0))
    snapshot = client.rpc("snapshot", "evm_snapshot")
    yield Chain(anvil, deployment)
    assert client.rpc("revert", "evm_revert", snapshot) is True
