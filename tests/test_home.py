"""The node's home directory: key creation, file modes, and refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.home import HomeError, NodeHome, generate_private_key, read_private_key, write_secret


def test_initialise_creates_an_owner_only_key(tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "alice")
    home.initialise()
    mode = stat.S_IMODE(home.node_key_path.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(home.root.stat().st_mode) == 0o700
    assert len(home.node_key()) == 32


def test_initialise_keeps_a_given_key(tmp_path: Path) -> None:
    key = bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d")
    home = NodeHome(tmp_path)
    home.initialise(node_key=key)
    assert home.node_key() == key
    assert home.chain_key() == key  # no chain.key: the node key pays


def test_initialise_refuses_to_replace_a_key(tmp_path: Path) -> None:
    home = NodeHome(tmp_path)
    home.initialise()
    first = home.node_key()
    with pytest.raises(HomeError, match="refusing to replace"):
        home.initialise()
    assert home.node_key() == first


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    home = NodeHome(tmp_path)
    home.initialise()
    os.chmod(home.node_key_path, 0o644)
    with pytest.raises(HomeError, match="0600"):
        home.node_key()


def test_missing_key_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="scnode init"):
        NodeHome(tmp_path).node_key()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("zz" * 32, "not a hex"),
        ("00" * 32, "not a valid"),
        ("ff" * 32, "not a valid"),
        ("01" * 31, "not a valid"),
    ],
)
def test_malformed_keys_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "node.key"
    write_secret(path, text)
    with pytest.raises(HomeError, match=problem):
        read_private_key(path)


def test_a_separate_chain_key_is_used_when_present(tmp_path: Path) -> None:
    home = NodeHome(tmp_path)
    home.initialise()
    chain_key = generate_private_key()
    write_secret(home.chain_key_path, chain_key.hex())
    assert home.chain_key() == chain_key
    assert home.chain_key() != home.node_key()


def test_generated_keys_differ() -> None:
    keys = {generate_private_key() for _ in range(64)}
    assert len(keys) == 64
