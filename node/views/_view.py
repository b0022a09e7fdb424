"""One view: a module folding the log into its own SQLite database.

A view never writes the log and never touches the engine's module: it has its
own instance, its own cursor and its own snapshots (in its database). Its calls
block (wasm, SQLite), so a node makes them from a worker thread, one at a time
per view. A view whose module refuses a record, traps (out of fuel: a loop), or
writes rows that do not fit its tables is disabled with the error; its database
stays as it was at its last transaction, consistent with its cursor.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from node.core.constants import (
    derive_batch_records_max,
    derive_snapshot_interval_records,
    views_transaction_records_max,
)
from node.core.errors import DeriveError, LogError
from node.derive import (
    Change,
    DeriveInstance,
    DeriveModule,
    Limits,
    LogSource,
    RecordRejectedError,
    RowDecoder,
    Schema,
    read_batches,
)
from node.views._catalog import ViewEntry
from node.views._database import ViewDatabase

logger = logging.getLogger("node.views")
_NO_TABLES = Schema((), b"")


@dataclass(frozen=True)
class ViewOptions:
    """How a view folds: its module's limits, how often it snapshots, how many records
    one SQLite transaction holds on a replay, and how many records one batch holds."""

    limits: Limits | None = None
    snapshot_interval_records: int = derive_snapshot_interval_records
    transaction_records_max: int = views_transaction_records_max
    batch_records_max: int = derive_batch_records_max

    def __post_init__(self) -> None:
        assert self.snapshot_interval_records > 0, self
        assert self.transaction_records_max > 0, self
        assert self.batch_records_max > 0, self


class View:
    """A view of ``module`` kept in the database at ``path``; ``open`` it first."""

    def __init__(
        self,
        entry: ViewEntry,
        module: DeriveModule,
        path: Path,
        options: ViewOptions | None = None,
    ) -> None:
        assert module.sha256_hex == entry.sha256, (entry, module.sha256_hex)
        self.entry = entry
        self.module = module
        self.path = path
        self.options = options or ViewOptions()
        self.schema = module.schema or _NO_TABLES
        self._decoder = RowDecoder(self.schema)
        self._database: ViewDatabase | None = None
        self._instance: DeriveInstance | None = None
        self._snapshot_seq = 0
        self.cursor = 0
        self.error: str | None = None
        self.opened = False
        self.rows_applied = 0  # row changes written since open (inserts, replaces, deletes)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def running(self) -> bool:
        return self._instance is not None and self.error is None

    # ------------------------------------------------------------------ life cycle

    def open(self, log: LogSource) -> None:
        """Bring the module to the database's cursor (blocking); a failure disables the view."""
        assert not self.opened
        self.opened = True
        try:
            self._open(log)
        except (DeriveError, LogError, sqlite3.Error) as error:
            self._disable(error)

    def _open(self, log: LogSource) -> None:
        database = self._database = ViewDatabase.open(
            self.path, sha256=self.module.sha256_hex, schema=self.schema
        )
        if database.cursor > log.last_seq:
            logger.warning(
                "view %s: its tables hold records up to %d, the log ends at %d: rebuilding",
                self.name,
                database.cursor,
                log.last_seq,
            )
            database.reset()
        cursor = database.cursor
        instance, start = self._restored(database, log, cursor)
        if cursor == 0:
            # Empty tables: the first answer holds every row (of the snapshot restored,
            # if the log had one of this module's).
            database.save(self._decoder.decode(instance.apply_batch(b"")), start)
            cursor = start
        else:
            batches = read_batches(log, start + 1, cursor)
            try:
                for _, batch in batches:
                    instance.apply_batch(batch)  # the tables hold these changes already
            finally:
                batches.close()
            instance.apply_batch(b"")  # a restore's every-row answer, if still owed
        self._instance, self.cursor = instance, cursor
        self._snapshot_seq = start
        logger.info("view %s: open at %d (restored at %d)", self.name, cursor, start)

    def _restored(
        self, database: ViewDatabase, log: LogSource, cursor: int
    ) -> tuple[DeriveInstance, int]:
        """An instance with its tables turned on, restored from the newest snapshot at
        or before ``cursor`` (the database's own, else the module's in the log; with no
        cursor, the newest in the log), and that snapshot's seq (0: none)."""
        candidates = []
        own = database.latest_snapshot()
        if own is not None and own[0] <= cursor:
            candidates.append(own)
        shared = log.latest_snapshot(self.module.sha256, at_or_before=cursor or None)
        if shared is not None:
            candidates.append((shared.seq, shared.blob))
        for seq, blob in sorted(candidates, key=lambda candidate: -candidate[0]):
            instance = self._instance_with_tables()
            try:
                instance.restore(blob)
            except RecordRejectedError as error:
                logger.warning("view %s: snapshot at %d refused: %s", self.name, seq, error)
                continue
            return instance, seq
        return self._instance_with_tables(), 0

    def _instance_with_tables(self) -> DeriveInstance:
        instance = DeriveInstance(self.module, self.options.limits)
        if self.module.has_tables:
            instance.describe_tables()
        return instance

    def close(self) -> None:
        """Keep a snapshot at the cursor (so a restart replays nothing), then close."""
        try:
            if self.running and self.cursor > self._snapshot_seq:
                assert self._instance is not None
                assert self._database is not None
                self._database.save([], self.cursor, (self.cursor, self._instance.snapshot()))
        except (DeriveError, sqlite3.Error) as error:
            logger.warning("view %s: no snapshot at close: %s", self.name, error)
        finally:
            self._instance = None
            if self._database is not None:
                self._database.close()
                self._database = None

    def _disable(self, error: Exception) -> None:
        self.error = f"{type(error).__name__}: {error}"
        self._instance = None
        logger.error("view %s disabled at record %d: %s", self.name, self.cursor + 1, self.error)

    # ------------------------------------------------------------------ folding

    def catch_up(self, log: LogSource, records_max: int) -> int:
        """Fold at most ``records_max`` of the records after the cursor (blocking);
        returns how many. A failure disables the view (and returns 0)."""
        if not self.running:
            return 0
        target = min(log.last_seq, self.cursor + records_max)
        if target <= self.cursor:
            return 0
        before = self.cursor
        try:
            self._fold(log, target)
        except (DeriveError, LogError, sqlite3.Error) as error:
            self._disable(error)
        return self.cursor - before

    def _fold(self, log: LogSource, target: int) -> None:
        instance, database = self._instance, self._database
        assert instance is not None
        assert database is not None
        pending: list[Change] = []
        folded = self.cursor
        batches = read_batches(
            log, self.cursor + 1, target, batch_records_max=self.options.batch_records_max
        )
        try:
            for last, batch in batches:
                pending.extend(self._decoder.decode(instance.apply_batch(batch)))
                folded = last
                snapshot_due = folded - self._snapshot_seq >= self.options.snapshot_interval_records
                if snapshot_due or folded - self.cursor >= self.options.transaction_records_max:
                    self._commit(pending, folded, snapshot=snapshot_due)
                    pending = []
        finally:
            batches.close()
        if folded > self.cursor:
            self._commit(pending, folded, snapshot=False)

    def _commit(self, changes: list[Change], folded: int, *, snapshot: bool) -> None:
        assert self._instance is not None
        assert self._database is not None
        kept = (folded, self._instance.snapshot()) if snapshot else None
        self._database.save(changes, folded, kept)
        self.rows_applied += sum(len(change.rows) for change in changes)
        self.cursor = folded
        if kept is not None:
            self._snapshot_seq = folded

    # ------------------------------------------------------------------ facts

    def info(self, log_last_seq: int) -> dict[str, object]:
        """What ``list_views`` says of this view."""
        state = "disabled" if self.error else "running" if self._instance else "starting"
        return {
            "name": self.name,
            "sha256": self.entry.sha256,
            "engine": self.entry.engine,
            "module": self.module.name,
            "state": state,
            "error": self.error,
            "cursor": self.cursor,
            "behind": max(log_last_seq - self.cursor, 0),
            "rows_applied": self.rows_applied,
            "tables": [
                {
                    "name": table.name,
                    "description": table.description,
                    "primary_key": list(table.key_names),
                    "columns": [
                        {"name": c.name, "type": c.type_name, "description": c.description}
                        for c in table.columns
                    ],
                }
                for table in self.schema.tables
            ],
        }
