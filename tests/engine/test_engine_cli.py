"""The ``run`` and ``ledger`` commands' parsing and their errors without a node."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from node.cli import _common, _ledger, _run, main
from node.home import NodeHome


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scnode")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _run.register(subparsers)
    _ledger.register(subparsers)
    return parser


@pytest.mark.parametrize(
    ("text", "wei"),
    [("1000", 1000), ("1.5eth", 15 * 10**17), ("20 gwei", 20 * 10**9), ("2ETH", 2 * 10**18)],
)
def test_amounts(text: str, wei: int) -> None:
    assert _common.parse_amount(text) == wei


@pytest.mark.parametrize("text", ["", "-1", "1.5", "0.1wei", "1e18", "eth", f"{2**256}"])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _common.parse_amount(text)


def test_listen_multiaddr() -> None:
    assert _run.parse_listen("/ip4/127.0.0.1/tcp/4001") == ("127.0.0.1", 4001)
    for bad in ("/ip4/127.0.0.1/udp/4001", "127.0.0.1:4001", "/ip4/127.0.0.1/tcp/70000"):
        with pytest.raises(argparse.ArgumentTypeError):
            _run.parse_listen(bad)


def test_commands_parse(tmp_path: Path) -> None:
    namespace = parser().parse_args(
        ["run", "--home", str(tmp_path), "--listen", "/ip4/127.0.0.1/tcp/0", "--peer", "/a"]
    )
    assert namespace.handler is _run.run_command
    assert namespace.peer == ["/a"]
    namespace = parser().parse_args(
        ["ledger", "open", "--home", str(tmp_path), "--counterparty", "0x1", "--amount", "1eth"]
    )
    assert namespace.handler is _ledger.ledger_open_command
    assert namespace.amount == 10**18
    assert namespace.counterparty_amount == 0
    with pytest.raises(SystemExit):
        parser().parse_args(["ledger", "open", "--home", str(tmp_path), "--amount", "1"])


def test_ledger_commands_without_a_running_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    NodeHome(tmp_path).initialise()
    assert main(["ledger", "list", "--home", str(tmp_path)]) == 1
    assert "is `scnode run --home" in capsys.readouterr().err
    (tmp_path / "rpc.url").write_text("http://127.0.0.1:1\n")
    (tmp_path / "rpc.token").write_text("token\n")
    (tmp_path / "rpc.token").chmod(0o600)
    assert main(["ledger", "close", "--home", str(tmp_path), "--channel", "0x00"]) == 1
    assert "scnode ledger close:" in capsys.readouterr().err
