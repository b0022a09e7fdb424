"""Confirmations by chain id: none on development chains, a safe depth elsewhere."""

from __future__ import annotations

import pytest

from node.chain import default_confirmations
from node.core import constants
from node.core.errors import InvalidValueError


@pytest.mark.parametrize("chain_id", [31337, 1337])
def test_development_chains_need_no_confirmations(chain_id: int) -> None:
    assert chain_id in constants.chain_development_ids
    assert default_confirmations(chain_id) == 0


@pytest.mark.parametrize("chain_id", [1, 10, 137, 8453, 42161, 11155111, 31338, 1338])
def test_other_chains_wait_for_a_safe_depth(chain_id: int) -> None:
    assert default_confirmations(chain_id) == constants.chain_confirmations_safe == 12


@pytest.mark.parametrize("chain_id", [0, -1, True, 1.0, "1"])
def test_a_chain_id_is_a_positive_integer(chain_id: object) -> None:
    with pytest.raises(InvalidValueError, match=r"^chain_id: "):
        default_confirmations(chain_id)  # type: ignore[arg-type]
