"""Packages whose dependencies take long to import export their names lazily.

web3 takes most of a second to import and libp2p more than half of one; a node
answers its API before either is needed. Such a package lists its re-exports in
an ``if TYPE_CHECKING:`` block (what type checkers and readers see) and binds
``__getattr__, __dir__ = lazy_exports(__name__, __file__)``: a name is imported
from its private module the first time it is used.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from pathlib import Path


def lazy_exports(
    package: str, init_file: str
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, from the re-exports its
    ``__init__.py`` (``init_file``) lists under ``if TYPE_CHECKING:``."""
    table: dict[str, str] = {}

    def names() -> dict[str, str]:
        if not table:
            table.update(_type_checking_exports(Path(init_file)))
        return table

    def getattr_(name: str) -> object:
        module = names().get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def dir_() -> list[str]:
        return sorted(names())

    return getattr_, dir_


def _type_checking_exports(init_file: Path) -> dict[str, str]:
    """``{name: module}`` of the ``from M import N as N`` lines under ``if TYPE_CHECKING:``."""
    tree = ast.parse(init_file.read_text(), filename=str(init_file))
    exports: dict[str, str] = {}
    for statement in tree.body:
        if not (isinstance(statement, ast.If) and ast.unparse(statement.test) == "TYPE_CHECKING"):
            continue
        for imported in statement.body:
            assert isinstance(imported, ast.ImportFrom)
            assert imported.module is not None
            for alias in imported.names:
                exports[alias.asname or alias.name] = imported.module
    return exports
