"""The scnode command line: every command is listed, each loads only its own package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import COMMANDS, build_parser, main
from node.home import NodeHome


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    for name, (_, help_text) in COMMANDS.items():
        assert name in out
        assert help_text.split(";")[0] in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_registered_by_its_module(command: str) -> None:
    # The index in node/cli/_main.py must name the module that really registers the command.
    subparsers = build_parser(command)._subparsers
    assert subparsers is not None
    choices = subparsers._group_actions[0].choices
    assert isinstance(choices, dict)
    parser = choices[command]
    # A listed-only command has nothing but -h; a registered one has its own arguments.
    assert [a for a in parser._actions if a.dest != "help"], command


def test_listing_commands_loads_no_heavy_package() -> None:
    probe = (
        "import sys, node.cli; node.cli.build_parser(None); node.cli.build_parser('log'); "
        "heavy = [m for m in ('libp2p', 'web3', 'wasmtime', 'trio') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_help_loads_nothing_but_the_command_line() -> None:
    # `scnode --help` and `--version` stay fast: node.cli's own exports (the batch payer,
    # the tables) import the runtime packages and rich only where they are used.
    probe = (
        "import sys, node.cli; node.cli.build_parser(None); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('node', 'rich') "
        "and m != 'node' and not m.startswith('node.cli')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_init_then_refuse_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--home", str(tmp_path / "node")]) == 0
    assert "node address 0x" in capsys.readouterr().out
    assert NodeHome(tmp_path / "node").node_key_path.exists()
    assert main(["init", "--home", str(tmp_path / "node")]) == 1
    assert "refusing to replace a key" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
