"""The ``scnode`` command.

Each command has a module in ``node/cli/`` with ``register(subparsers)``; it adds
its subparsers and sets ``handler`` on each, a function taking the parsed namespace
and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each command, the module that registers it, and its line in `scnode --help`. Only the
# chosen command's module is imported: the packages behind the others load libp2p, web3
# and wasmtime, which would cost every command, even --help, more than a second.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("node.cli._init", "create a node's home directory and key"),
    "run": ("node.cli._run", "run the node: p2p, chain, JSON-RPC and the engine"),
    "ledger": ("node.cli._ledger", "open, close and list ledger channels"),
    "channel": ("node.cli._channel", "open, close and list payment (virtual) channels"),
    "pay": ("node.cli._pay", "pay on a payment channel, once or many times in batches"),
    "log": ("node.cli._log", "inspect and check the event log"),
    "derive": ("node.cli._derive", "print the state a derivation module derives from the log"),
    "sql": ("node.cli._sql", "one read-only SQL statement over the views' tables"),
    "views": ("node.cli._views", "list, add and remove view modules"),
    "dashboard": ("node.cli._dashboard", "print the URL of the running node's web dashboard"),
    "devnet": ("node.cli._devnet", "run a local anvil devnet with the contracts"),
    "peers": ("node.cli._peers", "list the peers this node knows"),
    "connect": (
        "node.cli._peers",
        "add a peer by multiaddr; the node dials it and keeps redialling it",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser, with ``command`` fully registered and the others listed."""
    parser = argparse.ArgumentParser(
        prog="scnode", description="A peer-to-peer Nitro state-channel node."
    )
    parser.add_argument("--version", action="version", version=f"scnode {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = COMMANDS[command][0] if command in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        if name in subparsers.choices:
            continue  # registered with another command of its module
        if module_name == chosen:
            importlib.import_module(module_name).register(subparsers)
        else:
            subparsers.add_parser(name, help=help_text)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command named on the line: its first argument that is not an option."""
    return next((argument for argument in argv if not argument.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    if not __debug__:
        # Assertions are part of the node's safety checks (STYLE.md): never strip them.
        print("scnode refuses to run under python -O: its assertions must stay on.")
        return 2
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(arguments))
    namespace = parser.parse_args(arguments)
    handler = getattr(namespace, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    exit_code: int = handler(namespace)
    return exit_code


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scnode")
    except PackageNotFoundError:
        return "unknown"
