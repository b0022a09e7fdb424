"""Differential: the same operations on our adjudicator and apps and on the
reference Nitro 2.x artifacts (npm @statechannels/nitro-protocol) leave the
same holdings, statuses, payouts, revert reasons and logs, byte for byte.

The states are built and signed with node.core, so this also proves that its
encodings are the ones the Nitro contracts check on chain."""

from __future__ import annotations

import pytest

from node.chain import Anvil
from node.testing import ScenarioRun, run_scenarios

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs(anvil: Anvil) -> tuple[ScenarioRun, ScenarioRun]:
    return run_scenarios(anvil.url, reference=False), run_scenarios(anvil.url, reference=True)


def test_every_operation_succeeds_or_fails_alike(runs: tuple[ScenarioRun, ScenarioRun]) -> None:
    ours, reference = runs
    assert [(s.name, s.result) for s in ours.steps] == [(s.name, s.result) for s in reference.steps]
    failed = [s.name for s in ours.steps if s.result != "ok"]
    assert len(failed) >= 10  # the sequence does exercise the error paths
    assert all(s.gas_used > 0 for s in ours.steps if s.result == "ok")


def test_holdings_statuses_and_payouts_are_equal(runs: tuple[ScenarioRun, ScenarioRun]) -> None:
    ours, reference = runs
    assert ours.holdings == reference.holdings
    assert ours.statuses == reference.statuses
    assert ours.balances == reference.balances
    paid = {(asset, address): amount for asset, address, amount in ours.balances}
    assert sum(paid.values()) > 0


def test_logs_and_chain_events_are_equal(runs: tuple[ScenarioRun, ScenarioRun]) -> None:
    ours, reference = runs
    assert ours.logs == reference.logs
    assert ours.events == reference.events
    assert len(ours.logs) >= 30


def test_reference_guarantees_use_exit_format_type_2(runs: tuple[ScenarioRun, ScenarioRun]) -> None:
    _, reference = runs
    results = {s.name: s.result for s in reference.steps}
    assert results["reclaim"] == "ok"
    assert results["reclaim wrong index"].endswith("not a guarantee allocation")
    # A guarantee as node.core writes it (type 2) is treated alike by both adjudicators.
    ours = {s.name: s.result for s in runs[0].steps}
    name = "concludeAndTransferAllAssets (core guarantee)"
    assert ours[name] == results[name]


def test_our_deposit_and_happy_exit_cost_no_more_gas(runs: tuple[ScenarioRun, ScenarioRun]) -> None:
    ours, reference = runs
    for name in (
        "deposit native (first)",
        "deposit native (second)",
        "deposit ERC20 (first)",
        "concludeAndTransferAllAssets",
        "concludeAndTransferAllAssets (2 assets)",
    ):
        assert ours.gas(name) <= reference.gas(name), name
    dearer = [s.name for s in ours.steps if s.result == "ok" and s.gas_used > reference.gas(s.name)]
    assert dearer == []
