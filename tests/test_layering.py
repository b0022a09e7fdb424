"""The package layering of node/, checked on the source: pure code stays pure,
and packages reach each other only through their public roots."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

NODE = Path(__file__).resolve().parent.parent / "node"

# Packages that must not do I/O or depend on a runtime: no event loop, no
# database, no network, no chain, no WASM engine.
PURE_PACKAGES = ("core", "protocols")
IMPURE_MODULES = (
    "trio",
    "rocksdict",
    "wasmtime",
    "libp2p",
    "web3",
    "socket",
    "subprocess",
    "threading",
    "asyncio",
    "node.log",
    "node.derive",
    "node.p2p",
    "node.chain",
    "node.rpc",
    "node.engine",
)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every (line, module) a Python file imports, absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                yield statement.lineno, alias.name
        elif isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            yield statement.lineno, statement.module


def package_of(path: Path) -> str | None:
    relative = path.relative_to(NODE)
    return relative.parts[0] if len(relative.parts) > 1 else None


def test_pure_packages_import_no_runtime() -> None:
    offences = []
    for package in PURE_PACKAGES:
        for path in sorted((NODE / package).rglob("*.py")) if (NODE / package).is_dir() else []:
            for line, module in imported_modules(path):
                if any(module == bad or module.startswith(bad + ".") for bad in IMPURE_MODULES):
                    offences.append(f"{path.relative_to(NODE.parent)}:{line} imports {module}")
    assert offences == []


def test_packages_import_each_other_by_root_only() -> None:
    offences = []
    for path in sorted(NODE.rglob("*.py")):
        own = package_of(path)
        for line, module in imported_modules(path):
            parts = module.split(".")
            if len(parts) < 3 or parts[0] != "node":
                continue
            if parts[1] != own and parts[2].startswith("_"):
                offences.append(f"{path.relative_to(NODE.parent)}:{line} imports {module}")
    assert offences == []


def test_the_checks_see_the_tree() -> None:
    # Guard against the scans above passing because they read nothing.
    assert (NODE / "core").is_dir()
    assert any(True for _ in imported_modules(NODE / "cli" / "_main.py"))
