"""A running node's views: loaded at start, folded beside the engine, queried read-only.

The engine calls ``log_advanced`` after each durable step; the service wakes at
most every ``views_refresh_interval_ms`` and lets each running view fold what
the log gained, in a worker thread, a bounded number of records per call (so a
view being added or removed, or the node stopping, waits for one call at most).
Views never slow the engine's step: they only read the log, after the fact.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from node.core.constants import (
    views_catch_up_records_max,
    views_fold_share_max,
    views_refresh_interval_ms,
    views_refresh_interval_ms_max,
    views_sql_queries_max,
    views_sql_time_limit_ms,
)
from node.core.errors import DeriveError
from node.derive import DeriveModule, LogSource
from node.views._catalog import (
    ENGINE_VIEW,
    ViewCatalog,
    ViewEntry,
    ViewError,
    view_name_of,
)
from node.views._sql import SqlAnswer, run_query
from node.views._view import View, ViewOptions

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger("node.views")


class ViewService:
    """The views of the node whose home holds ``root``.

    Args:
        root: ``HOME/views``.
        log: the node's event log (only read).
        engine_module: the engine's module; its view is named ``engine`` (when it
            has tables).
        cache_dir: where compiled modules are cached.
        options: how views fold (tests shorten the limits).
    """

    def __init__(
        self,
        root: Path,
        log: LogSource,
        *,
        engine_module: DeriveModule | None = None,
        cache_dir: Path | None = None,
        options: ViewOptions | None = None,
    ) -> None:
        self.catalog = ViewCatalog(root)
        self.log = log
        self.engine_module = engine_module
        self.cache_dir = cache_dir
        self.options = options or ViewOptions()
        self._views: dict[str, View] = {}
        self._broken: dict[str, tuple[ViewEntry, str]] = {}
        self._lock = trio.Lock()
        self._advanced = trio.Event()
        self._queries = trio.CapacityLimiter(views_sql_queries_max)

    # ------------------------------------------------------------------ start

    def load(self, view_files: Sequence[Path] = ()) -> None:
        """List the engine's view and ``view_files`` in the catalog, and load every
        listed module (blocking: modules compile). A view module that fails to load
        from the catalog is listed as disabled.

        Raises:
            ViewError: a module of ``view_files`` is refused, or its name taken.
        """
        self._list_engine_view()
        for path in view_files:
            self._list_view_file(path)
        for entry in self.catalog.entries():
            try:
                module = self._module(self.catalog.module_bytes(entry), entry.name)
            except ViewError as error:
                self._broken[entry.name] = (entry, str(error))
                logger.error("view %s disabled: %s", entry.name, error)
                continue
            self._views[entry.name] = View(
                entry, module, self.catalog.database_path(entry.name), self.options
            )

    def _module(self, wasm: bytes, name: str) -> DeriveModule:
        try:
            return DeriveModule(wasm, name=name, cache_dir=self.cache_dir)
        except DeriveError as error:
            raise ViewError(f"view {name}: {error}") from None

    def _list_engine_view(self) -> None:
        listed = self.catalog.find(ENGINE_VIEW)
        module = self.engine_module
        if module is None or not module.has_tables:
            if listed is not None:
                self.catalog.remove(ENGINE_VIEW)
            return
        if listed is None:
            self.catalog.add(ENGINE_VIEW, module.wasm, engine=True)
        elif listed.sha256 != module.sha256_hex:
            self.catalog.replace(listed, module.wasm)

    def _list_view_file(self, path: Path) -> None:
        try:
            wasm = path.read_bytes()
        except OSError as error:
            raise ViewError(f"--view {path}: cannot read: {error.strerror}") from None
        name = view_name_of(path)
        self._module(wasm, name)  # refused now, not at the first record
        listed = self.catalog.find(name)
        if listed is None:
            self.catalog.add(name, wasm)
        elif listed.engine:
            raise ViewError(f"--view {path}: the name {name} is the engine's view")
        elif listed.sha256 != hashlib.sha256(wasm).hexdigest():
            self.catalog.replace(listed, wasm)

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the views, then fold what the log gains until cancelled; at the end,
        fold the last records and close each view (keeping a snapshot)."""
        task_status.started()
        try:
            for view in list(self._views.values()):
                async with self._lock:
                    if not view.opened:
                        await trio.to_thread.run_sync(view.open, self.log)
            self._advanced.set()
            while True:
                await self._advanced.wait()
                self._advanced = trio.Event()
                started = trio.current_time()
                await self._catch_up_all()
                await trio.sleep(_pause_after(trio.current_time() - started))
        finally:
            self._close_all()

    def log_advanced(self) -> None:
        """The engine's hook: the log holds more records (called from the trio thread)."""
        self._advanced.set()

    async def _catch_up_all(self) -> None:
        for name in list(self._views):
            while True:
                async with self._lock:
                    view = self._views.get(name)
                    if view is None or not view.running:
                        break
                    folded = await trio.to_thread.run_sync(
                        view.catch_up, self.log, views_catch_up_records_max
                    )
                if folded < views_catch_up_records_max:
                    break

    def _close_all(self) -> None:
        """Fold the records of the last steps, snapshot, close (blocking, at stop)."""
        for view in self._views.values():
            if view.running:
                view.catch_up(self.log, views_catch_up_records_max)
            view.close()

    # ------------------------------------------------------------------ management

    async def add(self, name: str, wasm: bytes) -> dict[str, object]:
        """Add a view of module ``wasm`` named ``name``; it catches up in the background.

        Raises:
            ViewError: a bad or taken name, or a module this host refuses.
        """
        module = await trio.to_thread.run_sync(self._module, wasm, name)
        async with self._lock:
            entry = self.catalog.add(name, wasm)
            self._broken.pop(name, None)
            view = View(entry, module, self.catalog.database_path(name), self.options)
            await trio.to_thread.run_sync(view.open, self.log)
            self._views[name] = view
        self._advanced.set()
        logger.warning("view %s added (module sha256 %s)", name, entry.sha256)
        return view.info(self.log.last_seq)

    async def remove(self, name: str) -> None:
        """Stop a view and delete its database.

        Raises:
            ViewError: no such view, or the engine's.
        """
        async with self._lock:
            entry = self.catalog.find(name)
            if entry is None:
                raise ViewError(f"no view named {name}")
            if entry.engine:
                raise ViewError(f"{name} is the view of the engine's module: it stays")
            view = self._views.pop(name, None)
            self._broken.pop(name, None)
            if view is not None:
                await trio.to_thread.run_sync(view.close)
            self.catalog.remove(name)
        logger.warning("view %s removed", name)

    def views(self) -> list[dict[str, object]]:
        """What each view is and how far it is, in the order they were added."""
        last_seq = self.log.last_seq
        answers: list[dict[str, object]] = []
        for entry in self.catalog.entries():
            view = self._views.get(entry.name)
            if view is not None:
                answers.append(view.info(last_seq))
            elif entry.name in self._broken:
                answers.append(_broken_info(entry, self._broken[entry.name][1]))
        return answers

    def databases(self) -> dict[str, Path]:
        """Each view's database, by view name."""
        return {name: view.path for name, view in self._views.items()}

    async def query(self, sql: str, time_limit_ms: int = views_sql_time_limit_ms) -> SqlAnswer:
        """Run one read-only statement over the views (in a worker thread).

        Raises:
            SqlError: refused, failed, or out of time.
        """
        databases = self.databases()
        async with self._queries:
            return await trio.to_thread.run_sync(
                lambda: run_query(databases, sql, time_limit_ms=time_limit_ms)
            )


def _broken_info(entry: ViewEntry, error: str) -> dict[str, object]:
    return {
        "name": entry.name,
        "sha256": entry.sha256,
        "engine": entry.engine,
        "module": None,
        "state": "disabled",
        "error": error,
        "cursor": 0,
        "behind": None,
        "tables": [],
    }


def _pause_after(fold_s: float) -> float:
    """Seconds to wait after a round of folding that took ``fold_s``: the refresh
    interval, or longer when folding is slow (up to ``views_refresh_interval_ms_max``),
    so that views take at most ``views_fold_share_max`` of the time. A view writes the
    rows of each channel a batch touched (all of a busy ledger's), so a longer pause
    folds more records per row written."""
    pause_s = fold_s * (1 / views_fold_share_max - 1)
    return min(max(views_refresh_interval_ms / 1000, pause_s), views_refresh_interval_ms_max / 1000)
