"""Each package of node/ keeps its code in private modules and re-exports its
public API from __init__.py, each name once, under its own name."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

NODE = Path(__file__).resolve().parent.parent / "node"
PACKAGES = sorted(
    path.parent.name
    for path in NODE.glob("*/__init__.py")
    if path.parent.name != "proto"  # generated code keeps protoc's layout
)


def test_there_are_packages_to_check() -> None:
    assert "core" in PACKAGES


@pytest.mark.parametrize("package", PACKAGES)
def test_init_only_reexports(package: str) -> None:
    init = NODE / package / "__init__.py"
    tree = ast.parse(init.read_text())
    exported: list[str] = []
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # the docstring
        if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
            continue
        if isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
        assert isinstance(statement, ast.ImportFrom), (
            f"node/{package}/__init__.py line {statement.lineno}: only re-exports belong here"
        )
        assert statement.module is not None
        assert statement.module.startswith(f"node.{package}."), statement.module
        for alias in statement.names:
            assert alias.asname == alias.name, (
                f"node/{package}/__init__.py: write `{alias.name} as {alias.name}`"
            )
            exported.append(alias.name)
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert duplicates == []


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_resolve(package: str) -> None:
    module = importlib.import_module(f"node.{package}")
    public = [name for name in vars(module) if not name.startswith("_")]
    for name in public:
        assert getattr(module, name) is not None, f"node.{package}.{name}"
