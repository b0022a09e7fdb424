"""The views of a node's home: which modules, under which names, and their files.

    HOME/views/views.json            [{"name": ..., "sha256": ..., "engine": bool}, ...]
    HOME/views/modules/SHA256.wasm   each module, copied in (a view outlives its file)
    HOME/views/NAME.sqlite           each view's database (docs/adr/0009-views.md)

The file is small and rewritten whole (write, then rename): a crash leaves the
old list or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from node.core.constants import views_max, views_module_bytes_max
from node.core.errors import ScnodeError

CATALOG_FILE: Final = "views.json"
MODULES_DIRECTORY: Final = "modules"
DATABASE_SUFFIX: Final = ".sqlite"
# The view of the engine's own module.
ENGINE_VIEW: Final = "engine"
VIEW_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")


class ViewError(ScnodeError):
    """A view cannot be added, found or removed (the message says why)."""


@dataclass(frozen=True)
class ViewEntry:
    name: str
    sha256: str  # of the module's bytes, hex
    engine: bool = False  # the view of the engine's module


def view_name_of(path: Path) -> str:
    """The name a module file gets as a view: its stem, lower case, as a SQL name."""
    name = re.sub(r"[^a-z0-9_]", "_", path.stem.lower())
    if not name or not name[0].isalpha():
        name = "view_" + name
    return name[:32]


def check_view_name(name: str) -> None:
    """Raises ViewError unless ``name`` can name a view (and a SQL schema)."""
    if not VIEW_NAME.fullmatch(name) or name in ("main", "temp"):
        raise ViewError(
            f"view name {name!r}: use [a-z][a-z0-9_]*, at most 32 characters, not main or temp"
        )


class ViewCatalog:
    """The views listed in ``HOME/views``; not safe for two writers (one node runs)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def _file(self) -> Path:
        return self.root / CATALOG_FILE

    def database_path(self, name: str) -> Path:
        return self.root / f"{name}{DATABASE_SUFFIX}"

    def module_path(self, sha256: str) -> Path:
        assert _SHA256_HEX.fullmatch(sha256), sha256
        return self.root / MODULES_DIRECTORY / f"{sha256}.wasm"

    def entries(self) -> list[ViewEntry]:
        """The views, in the order they were added.

        Raises:
            ViewError: the file is damaged.
        """
        try:
            text = self._file.read_text()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ViewError(f"cannot read {self._file}: {error.strerror}") from None
        try:
            listed = json.loads(text)["views"]
            entries = [
                ViewEntry(str(item["name"]), str(item["sha256"]), bool(item.get("engine", False)))
                for item in listed
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise ViewError(f"{self._file} is damaged: {error!r}") from None
        for entry in entries:
            check_view_name(entry.name)
            if not _SHA256_HEX.fullmatch(entry.sha256):
                raise ViewError(f"{self._file}: view {entry.name} has no sha256")
        return entries

    def find(self, name: str) -> ViewEntry | None:
        return next((entry for entry in self.entries() if entry.name == name), None)

    def module_bytes(self, entry: ViewEntry) -> bytes:
        """The module of a view, checked against its sha256.

        Raises:
            ViewError: the file is missing or changed.
        """
        path = self.module_path(entry.sha256)
        try:
            wasm = path.read_bytes()
        except OSError as error:
            raise ViewError(f"view {entry.name}: cannot read {path}: {error.strerror}") from None
        if hashlib.sha256(wasm).hexdigest() != entry.sha256:
            raise ViewError(f"view {entry.name}: {path} does not hold the module it names")
        return wasm

    def add(self, name: str, wasm: bytes, *, engine: bool = False) -> ViewEntry:
        """List a view of module ``wasm`` under ``name`` (copied into ``modules/``).

        Raises:
            ViewError: a bad or taken name, too many views, a module too large.
        """
        check_view_name(name)
        if len(wasm) > views_module_bytes_max:
            raise ViewError(
                f"view {name}: the module has {len(wasm)} bytes (at most {views_module_bytes_max})"
            )
        entries = self.entries()
        if any(entry.name == name for entry in entries):
            raise ViewError(f"a view named {name} exists already: remove it first")
        if len(entries) >= views_max:
            raise ViewError(f"a node runs at most {views_max} views")
        entry = ViewEntry(name, hashlib.sha256(wasm).hexdigest(), engine)
        path = self.module_path(entry.sha256)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.is_file():
            _write_atomically(path, wasm)
        self._write([*entries, entry])
        return entry

    def replace(self, entry: ViewEntry, wasm: bytes) -> ViewEntry:
        """Point view ``entry.name`` at another module (the engine's, when it changes)."""
        entries = self.entries()
        updated = ViewEntry(entry.name, hashlib.sha256(wasm).hexdigest(), entry.engine)
        path = self.module_path(updated.sha256)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.is_file():
            _write_atomically(path, wasm)
        self._write([updated if item.name == entry.name else item for item in entries])
        self._drop_unused_modules()
        return updated

    def remove(self, name: str) -> ViewEntry:
        """Unlist a view and delete its database and, if no other view uses it, its module.

        Raises:
            ViewError: no such view.
        """
        entries = self.entries()
        entry = next((item for item in entries if item.name == name), None)
        if entry is None:
            raise ViewError(f"no view named {name}")
        self._write([item for item in entries if item.name != name])
        for suffix in ("", "-wal", "-shm"):
            self.database_path(name).with_name(f"{name}{DATABASE_SUFFIX}{suffix}").unlink(
                missing_ok=True
            )
        self._drop_unused_modules()
        return entry

    def _drop_unused_modules(self) -> None:
        used = {entry.sha256 for entry in self.entries()}
        directory = self.root / MODULES_DIRECTORY
        for path in directory.glob("*.wasm") if directory.is_dir() else []:
            if path.stem not in used:
                path.unlink(missing_ok=True)

    def _write(self, entries: list[ViewEntry]) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        listed = [
            {"name": entry.name, "sha256": entry.sha256, "engine": entry.engine}
            for entry in entries
        ]
        _write_atomically(self._file, (json.dumps({"views": listed}, indent=1) + "\n").encode())


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
