"""Fixtures shared by the test packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.chain import devnet_down, devnet_up


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A devnet (anvil, the contracts, two funded node accounts) for a module's node
    processes; a module that needs more nodes defines its own."""
    directory = tmp_path_factory.mktemp("devnet")
    devnet_up(directory, nodes=2)
    yield directory
    devnet_down(directory)
