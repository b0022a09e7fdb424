"""One anvil and one contract deployment per test module; a chain snapshot per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.chain import Anvil, ChainClient, Deployment, deploy_contracts, running_anvil
from node.derive import DeriveModule
from tests.actors import dev_key
from tests.engine.engine_support import MODULE_PATH, Setting


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


@pytest.fixture
def setting(
    tmp_path: Path,
    module: DeriveModule,
    anvil: Anvil,
    deployment: Deployment,
    chain_snapshot: ChainClient,
) -> Setting:
    """Parties of one test: their logs under tmp_path, watching the chain from now."""
    return Setting.on(
        tmp_path, module, anvil, deployment, start_block=chain_snapshot.block_number()
    )
