"""The node's home directory: key creation, file modes, and refusals."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node.core import constants
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


def test_init_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "node")
    home.root.mkdir()
    target = tmp_path / "elsewhere.key"  # where an attacker would like the key written
    home.node_key_path.symlink_to(target)
    with pytest.raises(HomeError, match="exists already"):
        home.initialise()
    assert not target.exists()
    assert home.node_key_path.is_symlink()


def test_a_symlink_to_an_existing_file_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    link = tmp_path / "chain.key"
    link.symlink_to(target)
    with pytest.raises(HomeError, match="exists already"):
        write_secret(link, generate_private_key().hex())
    assert target.read_text() == "keep me\n"


def test_a_secret_is_not_read_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    write_secret(real, generate_private_key().hex())
    home = NodeHome(tmp_path / "node")
    home.root.mkdir()
    home.node_key_path.symlink_to(real)
    with pytest.raises(HomeError, match="symbolic link"):
        home.node_key()


def test_a_chain_key_symlink_is_refused_not_skipped(tmp_path: Path) -> None:
    home = NodeHome(tmp_path)
    home.initialise()
    home.chain_key_path.symlink_to(tmp_path / "missing.key")  # dangling
    with pytest.raises(HomeError, match="symbolic link"):
        home.chain_key()


def test_write_secret_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_secret(tmp_path / "chain.key", generate_private_key().hex())
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "chain.key").stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["chain.key"]  # no temporary left


def test_a_planted_temporary_name_is_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The temporary name is random; planting a link under it still cannot redirect the write.
    monkeypatch.setattr("secrets.token_hex", lambda _: "fixed")
    target = tmp_path / "target"
    (tmp_path / ".node.key.fixed.tmp").symlink_to(target)
    with pytest.raises(HomeError, match=r"cannot write \.node\.key\.fixed\.tmp"):
        write_secret(tmp_path / "node.key", generate_private_key().hex())
    assert not target.exists()
    assert not (tmp_path / "node.key").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660])
def test_secrets_group_or_others_can_use_are_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.key"
    write_secret(path, generate_private_key().hex())
    os.chmod(path, mode)
    with pytest.raises(HomeError, match=r"chmod 600"):
        read_private_key(path)


def test_a_secret_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "node.key"
    os.mkfifo(fifo, 0o600)  # would block an ordinary open for reading
    with pytest.raises(HomeError, match="not a regular file"):
        read_private_key(fifo)


def test_an_oversized_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_secret(path, "0" * (constants.secret_file_bytes_max + 1))
    with pytest.raises(HomeError, match="larger than"):
        read_private_key(path)
