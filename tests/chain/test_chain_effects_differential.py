"""Differential, on random inputs: the adjudicator's pure payout and reclaim
computations give what the reference Nitro 2.x adjudicator gives (eth_call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from node.chain import ADJUDICATOR, Anvil, ChainClient, load_artifact, load_reference_artifact
from tests.actors import dev_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Pair = tuple[Contract, Contract]
amounts = st.integers(0, 2**128)
destinations = st.sampled_from([bytes(12) + bytes([i]) * 20 for i in range(1, 6)])


@pytest.fixture(scope="module")
def adjudicators(anvil: Anvil) -> Pair:
    client = ChainClient(anvil.url, dev_key(9))
    ours = client.deploy(load_artifact(ADJUDICATOR)).contract_address
    reference = client.deploy(load_reference_artifact(ADJUDICATOR)).contract_address
    assert ours is not None
    assert reference is not None
    abi = load_artifact(ADJUDICATOR)
    return client.contract(abi, ours), client.contract(abi, reference)


def outcome_of(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except ContractLogicError as error:
        return ("reverted", error.message)


def allocation(destination: bytes, amount: int, kind: int) -> tuple[bytes, int, int, bytes]:
    return (destination, amount, kind, b"\x01" if kind else b"")


@st.composite
def transfer_cases(draw: st.DrawFn) -> tuple[int, list[Any], list[int]]:
    count = draw(st.integers(0, 5))
    indices = sorted(draw(st.sets(st.integers(0, max(count - 1, 0)), max_size=count)))
    # With explicit indices only simple allocations: there the reference reads
    # the type of allocations[k] instead of allocations[i] (ours reads [i]).
    kinds = st.sampled_from([0, 2] if not indices else [0])
    allocations = [allocation(draw(destinations), draw(amounts), draw(kinds)) for _ in range(count)]
    return draw(amounts), allocations, indices


@settings(max_examples=60, deadline=None)
@given(case=transfer_cases())
def test_transfer_effects_match_the_reference(
    adjudicators: Pair, case: tuple[int, list[Any], list[int]]
) -> None:
    holdings, allocations, indices = case
    results = [
        outcome_of(
            contract.functions.compute_transfer_effects_and_interactions(
                holdings, allocations, indices
            ).call
        )
        for contract in adjudicators
    ]
    assert results[0] == results[1]


@st.composite
def reclaim_cases(draw: st.DrawFn) -> tuple[list[Any], list[Any], int]:
    count = draw(st.integers(2, 5))
    source = [allocation(draw(destinations), draw(amounts), 0) for _ in range(count)]
    index = draw(st.integers(0, count - 1))
    left, right = draw(destinations), draw(destinations)
    target = [allocation(left, draw(amounts), 0), allocation(right, draw(amounts), 0)]
    owed = target[0][1] + target[1][1] + draw(st.sampled_from([0, 0, 0, 1]))
    source[index] = (draw(destinations), owed, 2, left + right)
    return source, target, index


@settings(max_examples=60, deadline=None)
@given(case=reclaim_cases())
def test_reclaim_effects_match_the_reference(
    adjudicators: Pair, case: tuple[list[Any], list[Any], int]
) -> None:
    source, target, index = case
    results = [
        outcome_of(contract.functions.compute_reclaim_effects(source, target, index).call)
        for contract in adjudicators
    ]
    assert results[0] == results[1]
