"""How `scnode run`'s chain options become the node's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.engine._node import NodeConfigError, NodeOptions, _chain_settings

APP = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _options(tmp_path: Path, **overrides: str) -> NodeOptions:
    chosen = {"adjudicator": APP, "consensus_app": APP, **overrides}
    return NodeOptions(home=tmp_path, chain_url="http://127.0.0.1:1", **chosen)  # type: ignore[arg-type]


def test_addresses_are_checksummed_and_payments_are_off_without_an_app(tmp_path: Path) -> None:
    settings = _chain_settings(_options(tmp_path, adjudicator=APP.lower()))
    assert settings.adjudicator == APP
    assert settings.payment_app == ""


def test_a_virtual_payment_app_turns_payments_on(tmp_path: Path) -> None:
    settings = _chain_settings(_options(tmp_path, payment_app=APP.lower()))
    assert settings.payment_app == APP


@pytest.mark.parametrize("option", ["adjudicator", "consensus_app", "payment_app"])
def test_a_bad_address_names_its_option(tmp_path: Path, option: str) -> None:
    flag = "--virtual-payment-app" if option == "payment_app" else "--" + option.replace("_", "-")
    with pytest.raises(NodeConfigError, match=f"^{flag}: "):
        _chain_settings(_options(tmp_path, **{option: "0x12"}))


def test_without_a_chain_the_error_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="give --devnet DIR"):
        _chain_settings(NodeOptions(home=tmp_path))
