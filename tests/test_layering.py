"""The package layering of node/, checked on the source: pure code stays pure,
packages reach each other only through their public roots, and the runtime never
depends on the command line or on the test harnesses built on top of it."""

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
# Built on the runtime (every other package of node/, and its top-level modules such as
# home.py): the command line, and the harnesses of tests and scripts. They may import
# runtime packages (by root only); the runtime imports neither of them.
FRONT_PACKAGES = ("cli", "testing")


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every (line, module) a Python file imports, absolute names."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                yield statement.lineno, alias.name
        elif isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            yield statement.lineno, statement.module


def imported_names(path: Path) -> Iterator[tuple[int, str]]:
    """Every (line, module) a Python file imports, with ``from node import cli`` as
    ``node.cli``."""
    yield from imported_modules(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    for statement in ast.walk(tree):
        if isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
            for alias in statement.names:
                yield statement.lineno, f"{statement.module}.{alias.name}"


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


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


def runtime_files() -> list[Path]:
    return [path for path in sorted(NODE.rglob("*.py")) if package_of(path) not in FRONT_PACKAGES]


def test_the_runtime_imports_neither_the_command_line_nor_the_harnesses() -> None:
    front = [f"node.{package}" for package in FRONT_PACKAGES]
    offences = []
    for path in runtime_files():
        for line, module in imported_names(path):
            if any(is_within(module, package) for package in front):
                offences.append(f"{path.relative_to(NODE.parent)}:{line} imports {module}")
    assert offences == []


def test_the_command_line_imports_no_harness() -> None:
    offences = []
    for path in sorted((NODE / "cli").rglob("*.py")):
        for line, module in imported_names(path):
            if is_within(module, "node.testing"):
                offences.append(f"{path.relative_to(NODE.parent)}:{line} imports {module}")
    assert offences == []


def test_the_checks_see_the_tree() -> None:
    # Guard against the scans above passing because they read nothing.
    assert (NODE / "core").is_dir()
    assert any(True for _ in imported_modules(NODE / "cli" / "_main.py"))
    runtime = {package_of(path) for path in runtime_files()}
    expected = {"core", "log", "derive", "protocols", "engine", "p2p", "chain", "rpc", None}
    assert expected <= runtime  # None: node/home.py and node/__init__.py
    assert NODE / "home.py" in runtime_files()
    # The command line does use the runtime, by its roots.
    cli_imports = {
        module for path in (NODE / "cli").rglob("*.py") for _, module in imported_modules(path)
    }
    assert {"node.engine", "node.log", "node.derive", "node.chain", "node.p2p"} <= cli_imports


# The calls that write records into an event log (node.log.EventLog).
LOG_WRITES = ("append_batch", "append_payloads", "commit")


def log_writes(path: Path) -> Iterator[tuple[int, str]]:
    """Every (line, method) call of ``x.<method>(...)`` that writes records."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_WRITES
        ):
            yield node.lineno, node.func.attr


def test_only_the_engine_writes_records_to_the_log() -> None:
    """DESIGN.md rule 1: the engine loop is the only writer of the log (the log package
    implements the writes; the test harnesses own logs of their own)."""
    offences = []
    for path in runtime_files():
        if package_of(path) in ("engine", "log"):
            continue
        for line, method in log_writes(path):
            offences.append(f"{path.relative_to(NODE.parent)}:{line} calls .{method}()")
    assert offences == []
    engine_writes = {m for p in (NODE / "engine").rglob("*.py") for _, m in log_writes(p)}
    assert engine_writes == {"commit"}  # one write per step, nothing else


def test_no_package_has_an_import_cycle_between_its_modules() -> None:
    offences = []
    for package in sorted(p for p in NODE.iterdir() if (p / "__init__.py").is_file()):
        graph = {
            f"node.{package.name}.{path.stem}": {
                module
                for _, module in imported_modules(path)
                if module.startswith(f"node.{package.name}._")
            }
            for path in package.glob("_*.py")
        }
        offences += [f"{package.name}: {' -> '.join(cycle)}" for cycle in _cycles(graph)]
    assert offences == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each module that lies on one (depth-first search)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dependency in sorted(graph.get(module, ())):
            if state.get(dependency) == 1:
                found.append([*stack[stack.index(dependency) :], dependency])
            elif dependency not in state:
                visit(dependency)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found
