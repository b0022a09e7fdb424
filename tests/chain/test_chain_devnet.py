"""anvil start/stop and `scnode devnet up|down`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from web3 import Web3

from node.chain import ChainClient, running_anvil, start_anvil, stop_anvil
from node.chain._devnet import devnet_up, read_devnet
from node.cli import main as devnet_main
from node.core.errors import ChainError

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_running_anvil_answers_and_is_stopped_after() -> None:
    with running_anvil() as anvil:
        client = ChainClient(anvil.url, b"\x01" * 32)
        assert client.w3.eth.chain_id == 31337
        assert anvil.url.startswith("http://127.0.0.1:")
        pid = anvil.pid
    assert not Path(f"/proc/{pid}").exists()  # stopped and reaped
    assert stop_anvil(pid) is False  # already gone


def test_stop_anvil_refuses_a_process_that_is_not_anvil() -> None:
    assert stop_anvil(os.getpid()) is False


def test_missing_anvil_binary_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCNODE_ANVIL", str(tmp_path / "nope"))
    monkeypatch.setenv("PATH", str(tmp_path))
    import node.chain._anvil as anvil_module

    monkeypatch.setattr(anvil_module, "NODE_MODULES_DIR", tmp_path)
    with pytest.raises(ChainError, match="anvil not found"):
        start_anvil(tmp_path / "anvil.log")


def test_devnet_up_deploys_funds_and_down_stops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "net"
    assert devnet_main(["devnet", "up", "--nodes", "3", "--dir", str(directory)]) == 0
    try:
        devnet = read_devnet(directory)
        assert json.loads((directory / "devnet.json").read_text())["rpc_url"] == devnet.rpc_url
        assert len(devnet.nodes) == 3
        node = devnet.nodes[2]
        client = ChainClient(
            devnet.rpc_url, bytes.fromhex(node.private_key[2:]), devnet.adjudicator
        )
        assert client.address == node.address
        assert client.balance(node.address) > 0
        assert client.holdings("0x" + "00" * 20, b"\x01" * 32) == 0
        assert client.w3.eth.get_code(Web3.to_checksum_address(devnet.consensus_app)) != b""
        # A second `up` in the same directory is refused while the first runs.
        assert devnet_main(["devnet", "up", "--dir", str(directory)]) == 1
        assert "already up" in capsys.readouterr().err
    finally:
        assert devnet_main(["devnet", "down", "--dir", str(directory)]) == 0
    assert not (directory / "devnet.json").exists()
    assert devnet_main(["devnet", "down", "--dir", str(directory)]) == 1
    with pytest.raises(ChainError, match="nodes must be in"):
        devnet_up(directory, 0)


def test_a_malformed_devnet_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "devnet.json").write_text('{"rpc_url": "http://127.0.0.1:1"}')
    with pytest.raises(ChainError, match=r"devnet.json is malformed"):
        read_devnet(tmp_path)
    (tmp_path / "devnet.json").write_text("not json")
    with pytest.raises(ChainError, match=r"devnet.json is malformed"):
        read_devnet(tmp_path)
