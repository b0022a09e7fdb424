"""Undo for the engine's tables: a step changes them as it goes and commits or rolls back.

The engine folds each record into its state as soon as the record is built, so
later inputs of the same step see it; the records reach the log only at the end
of the step. Every change goes through a ``Journal``, which remembers what it
replaced: if the write fails, ``roll_back`` leaves the tables exactly as they
were before the step. Values in the tables are immutable, so remembering the
old value is enough.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MISSING: Final = object()


class Journal:
    """The changes made to a set of dicts since the last commit, undoable."""

    __slots__ = ("_undo",)

    def __init__(self) -> None:
        self._undo: list[tuple[dict[Any, Any], Any, Any]] = []

    def __len__(self) -> int:
        return len(self._undo)

    def set(self, table: dict[K, V], key: K, value: V) -> None:
        """``table[key] = value``, remembered."""
        self._undo.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    def delete(self, table: dict[K, V], key: K) -> None:
        """``del table[key]`` if present, remembered."""
        if key in table:
            self._undo.append((table, key, table.pop(key)))

    def commit(self) -> None:
        """Keep every change: nothing to undo any more."""
        self._undo.clear()

    def roll_back(self) -> None:
        """Undo every change since the last commit, newest first."""
        for table, key, old in reversed(self._undo):
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old
        self._undo.clear()
