"""The RPC token file: created 0600, reused across restarts, refused when unsafe."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import trio

from node.home import HomeError, NodeHome
from node.rpc import (
    ErrorCode,
    MethodRegistry,
    RpcClient,
    RpcError,
    RpcServer,
    generate_rpc_token,
    load_or_create_rpc_token,
    load_rpc_token,
    node_version,
)


def test_token_file_is_created_owner_only(tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "node")
    token = load_or_create_rpc_token(home)
    assert stat.S_IMODE(home.rpc_token_path.stat().st_mode) == 0o600
    assert len(token) >= 43
    assert home.rpc_token_path.read_text().strip() == token
    assert load_or_create_rpc_token(home) == token
    assert load_rpc_token(home) == token


def test_tokens_are_random() -> None:
    tokens = {generate_rpc_token() for _ in range(100)}
    assert len(tokens) == 100


def test_missing_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HomeError, match="not found"):
        load_rpc_token(NodeHome(tmp_path))


def test_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    home = NodeHome(tmp_path)
    load_or_create_rpc_token(home)
    os.chmod(home.rpc_token_path, 0o644)
    with pytest.raises(HomeError, match="0600"):
        load_or_create_rpc_token(home)


def test_a_planted_token_symlink_is_neither_followed_nor_replaced(tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "node")
    home.root.mkdir()
    target = tmp_path / "attacker-reads-this"
    home.rpc_token_path.symlink_to(target)  # dangling: a follower would create the target
    with pytest.raises(HomeError, match="symbolic link"):
        load_or_create_rpc_token(home)
    assert not target.exists()
    assert home.rpc_token_path.is_symlink()


def test_a_token_symlink_to_a_real_token_is_refused(tmp_path: Path) -> None:
    real = NodeHome(tmp_path / "real")
    load_or_create_rpc_token(real)
    home = NodeHome(tmp_path / "node")
    home.root.mkdir()
    home.rpc_token_path.symlink_to(real.rpc_token_path)
    with pytest.raises(HomeError, match="symbolic link"):
        load_rpc_token(home)


@pytest.mark.parametrize("content", ["", "short", "has spaces in it" * 4, "x" * 300])
def test_malformed_token_is_refused(tmp_path: Path, content: str) -> None:
    home = NodeHome(tmp_path)
    home.rpc_token_path.write_text(content)
    os.chmod(home.rpc_token_path, 0o600)
    with pytest.raises(HomeError, match="not an RPC token"):
        load_rpc_token(home)


async def run_once(home: NodeHome, token_used_by_client: str | None) -> str:
    """Start a server whose token comes from ``home``, make one call, stop it."""
    token = load_or_create_rpc_token(home)
    server = RpcServer(MethodRegistry(), token)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        client = RpcClient(url, token_used_by_client or token, timeout_ms=5_000)
        assert await client.call("version") == node_version()
        nursery.cancel_scope.cancel()
    return token


async def test_token_is_reused_across_restarts(tmp_path: Path) -> None:
    home = NodeHome(tmp_path / "node")
    first = await run_once(home, None)
    # The second run loads the same file: the first run's token still opens it.
    assert await run_once(home, first) == first
    other = NodeHome(tmp_path / "other")
    assert load_or_create_rpc_token(other) != first


async def test_another_nodes_token_is_refused(tmp_path: Path) -> None:
    token = load_or_create_rpc_token(NodeHome(tmp_path / "a"))
    stranger = load_or_create_rpc_token(NodeHome(tmp_path / "b"))
    server = RpcServer(MethodRegistry(), token)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(server.run)
        with pytest.raises(RpcError) as raised:
            await RpcClient(url, stranger, timeout_ms=5_000).call("version")
        assert raised.value.code == ErrorCode.UNAUTHORISED
        nursery.cancel_scope.cancel()
