"""The committed contract artifacts: up to date with the sources, and with the
Nitro 2.x adjudicator's interface (same function selectors and event topics)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from eth_utils.abi import event_abi_to_log_topic, function_abi_to_4byte_selector

from node.chain import (
    ADJUDICATOR,
    CONSENSUS_APP,
    TEST_TOKEN,
    VIRTUAL_PAYMENT_APP,
    load_artifact,
    load_reference_artifact,
)
from node.chain._artifacts import REPO_ROOT
from node.core.errors import ChainError


def _interface(name: str, *, reference: bool) -> tuple[set[bytes], set[bytes]]:
    artifact = load_reference_artifact(name) if reference else load_artifact(name)
    abi: list[Any] = list(artifact.abi)
    functions = {function_abi_to_4byte_selector(a) for a in abi if a["type"] == "function"}
    events = {event_abi_to_log_topic(a) for a in abi if a["type"] == "event"}
    return functions, events


@pytest.mark.parametrize("name", [ADJUDICATOR, CONSENSUS_APP, VIRTUAL_PAYMENT_APP])
def test_our_contracts_have_the_reference_interface(name: str) -> None:
    ours_functions, ours_events = _interface(name, reference=False)
    reference_functions, reference_events = _interface(name, reference=True)
    assert ours_functions == reference_functions
    assert ours_events == reference_events


def test_adjudicator_has_the_nitro_events() -> None:
    names = {a["name"] for a in load_artifact(ADJUDICATOR).abi if a["type"] == "event"}
    assert names == {
        "AllocationUpdated",
        "ChallengeCleared",
        "ChallengeRegistered",
        "Checkpointed",
        "Concluded",
        "Deposited",
        "Reclaimed",
    }


def test_artifacts_hold_bytecode_and_fit_the_size_limit() -> None:
    for name in (ADJUDICATOR, CONSENSUS_APP, VIRTUAL_PAYMENT_APP, TEST_TOKEN):
        artifact = load_artifact(name)
        assert artifact.name == name
        assert 0 < len(artifact.bytecode) <= 2 * 24_576


def test_unknown_artifacts_are_clear_errors() -> None:
    with pytest.raises(ChainError, match=r"Nope.*missing"):
        load_artifact("Nope")
    with pytest.raises(ChainError, match="no reference counterpart"):
        load_reference_artifact(TEST_TOKEN)


@pytest.mark.slow
def test_build_check_passes_on_the_committed_artifacts() -> None:
    node = shutil.which("node")
    assert node is not None, "node.js is needed to build the contracts"
    result = subprocess.run(
        [node, "contracts/build.js", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
