"""How `scnode run`'s chain options become the node's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.engine._node import (
    NodeConfigError,
    NodeOptions,
    _chain_settings,
    _challenge_durations,
    _watchtower_clients,
)

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


def test_challenge_durations_are_safe_by_default_and_short_on_a_devnet(tmp_path: Path) -> None:
    public = _challenge_durations(NodeOptions(home=tmp_path), devnet=False)
    assert (public.minimum, public.maximum, public.default) == (3_600, 30 * 86_400, 86_400)
    devnet = _challenge_durations(NodeOptions(home=tmp_path), devnet=True)
    assert (devnet.minimum, devnet.maximum, devnet.default) == (10, 86_400, 60)
    chosen = NodeOptions(
        home=tmp_path,
        challenge_duration_min=100,
        challenge_duration_max=200,
        challenge_duration=150,
    )
    assert _challenge_durations(chosen, devnet=True).default == 150


@pytest.mark.parametrize(
    ("low", "high", "default", "match"),
    [
        (0, 100, 50, "0 < min"),
        (200, 100, 150, "0 < min"),
        (10, 100, 5, "outside 10..100"),
        (10, 100, 101, "outside 10..100"),
    ],
)
def test_crossed_challenge_durations_are_refused(
    tmp_path: Path, low: int, high: int, default: int, match: str
) -> None:
    options = NodeOptions(
        home=tmp_path,
        challenge_duration_min=low,
        challenge_duration_max=high,
        challenge_duration=default,
    )
    with pytest.raises(NodeConfigError, match=match):
        _challenge_durations(options, devnet=True)


def test_watchtower_clients_must_be_addresses(tmp_path: Path) -> None:
    assert _watchtower_clients(NodeOptions(home=tmp_path)) is None
    lower = "0x" + "ab" * 20
    clients = _watchtower_clients(NodeOptions(home=tmp_path, watchtower_clients=(lower,)))
    assert clients == frozenset({"0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"})
    with pytest.raises(NodeConfigError, match="--watchtower-client"):
        _watchtower_clients(NodeOptions(home=tmp_path, watchtower_clients=("bob",)))
