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


def _reexports(init: Path, package: str, statements: list[ast.stmt]) -> list[str]:
    """The names re-exported by ``from node.<package>._x import Name as Name`` lines."""
    exported: list[str] = []
    for statement in statements:
        assert isinstance(statement, ast.ImportFrom), (
            f"{init} line {statement.lineno}: only re-exports belong here"
        )
        assert statement.module is not None
        assert statement.module.startswith(f"node.{package}."), statement.module
        for alias in statement.names:
            assert alias.asname == alias.name, f"{init}: write `{alias.name} as {alias.name}`"
            exported.append(alias.name)
    return exported


def _is_lazy_binding(statement: ast.stmt) -> bool:
    """``__getattr__, __dir__ = lazy_exports(__name__, __file__)`` (node/_lazy.py)."""
    return isinstance(statement, ast.Assign) and ast.unparse(statement) == (
        "__getattr__, __dir__ = lazy_exports(__name__, __file__)"
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_init_only_reexports(package: str) -> None:
    init = NODE / package / "__init__.py"
    tree = ast.parse(init.read_text())
    exported: list[str] = []
    lazy = False
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # the docstring
        if isinstance(statement, ast.ImportFrom) and statement.module in (
            "__future__",
            "typing",
            "node._lazy",
        ):
            continue
        if isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            if all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
        if _is_lazy_binding(statement):
            lazy = True
            continue
        if isinstance(statement, ast.If) and ast.unparse(statement.test) == "TYPE_CHECKING":
            exported += _reexports(init, package, statement.body)
            continue
        exported += _reexports(init, package, [statement])
    if any(isinstance(s, ast.If) for s in tree.body):
        assert lazy, f"{init}: names under TYPE_CHECKING need the lazy_exports binding"
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert duplicates == []


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_resolve(package: str) -> None:
    module = importlib.import_module(f"node.{package}")
    public = [name for name in dir(module) if not name.startswith("_")]
    assert public, f"node.{package} exports nothing"
    for name in public:
        assert getattr(module, name) is not None, f"node.{package}.{name}"


def test_a_lazy_package_refuses_a_name_it_does_not_export() -> None:
    chain = importlib.import_module("node.chain")
    with pytest.raises(AttributeError, match="no attribute 'Nonsense'"):
        _ = chain.Nonsense
