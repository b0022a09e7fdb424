"""One anvil and one contract deployment per test module; a chain snapshot per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from node.chain import Anvil, ChainClient, Deployment, deploy_contracts, running_anvil
from node.derive import DeriveModule
from tests.actors import dev_key
from tests.engine.engine_support import MODULE_PATH


@pytest.fixture(scope="session")
def module() -> DeriveModule:
    return DeriveModule.from_file(MODULE_PATH)


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with running_anvil() as running:
        yield running


@pytest.fixture(scope="module")
def deployment(anvil: Anvil) -> Deployment:
    return deploy_contracts(ChainClient(anvil.url, dev_key(0)), token_supply=10**27)


@pytest.fixture
def chain_snapshot(anvil: Anvil, deployment: Deployment) -> Iterator[ChainClient]:
    client = ChainClient(anvil.url, dev_key(0), deployment.adjudicator)
    snapshot = client.rpc("snapshot", "evm_snapshot")
    yield client
    assert client.rpc("revert", "evm_revert", snapshot) is True
