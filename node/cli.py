"""The ``scnode`` command.

Each package that offers subcommands has a ``_cli`` module with
``register(subparsers)``; it adds its subparsers and sets ``handler`` on each,
a function taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

COMMAND_MODULES: tuple[str, ...] = (
    "node.log._cli",
    "node.chain._cli",
    "node.derive._cli",
    "node.p2p._cli",
    "node.engine._cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every package's subcommands."""
    parser = argparse.ArgumentParser(
        prog="scnode", description="A peer-to-peer Nitro state-channel node."
    )
    parser.add_argument("--version", action="version", version=f"scnode {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_init(subparsers)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    if not __debug__:
        # Assertions are part of the node's safety checks (STYLE.md): never strip them.
        print("scnode refuses to run under python -O: its assertions must stay on.")
        return 2
    parser = build_parser()
    namespace = parser.parse_args(argv)
    handler = getattr(namespace, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    exit_code: int = handler(namespace)
    return exit_code


def _register_init(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = subparsers.add_parser("init", help="create a node's home directory and key")
    init.add_argument("--home", required=True, type=Path, help="the node's home directory")
    init.add_argument(
        "--key-file",
        type=Path,
        help="import this hex private key instead of generating one (e.g. a devnet account)",
    )
    init.set_defaults(handler=_init)


def _init(namespace: argparse.Namespace) -> int:
    from node.core import Signer
    from node.home import HomeError, NodeHome, read_private_key

    home = NodeHome(namespace.home)
    try:
        key = read_private_key(namespace.key_file) if namespace.key_file else None
        home.initialise(node_key=key)
        address = Signer(home.node_key()).address
    except HomeError as error:
        print(f"scnode init: {error}", file=sys.stderr)
        return 1
    print(f"initialised {home.root}")
    print(f"node address {address}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scnode")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
