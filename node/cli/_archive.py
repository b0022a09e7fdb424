"""``scnode log archive``: archive the log's prefix below a restart point, then prune it.

It runs on a stopped node: the running node is its log's only writer and holds its
lock (docs/adr/0011-log-archive.md). In order:

1. the restart point: the engine's newest snapshot and the module's at or before
   it, both loaded as a restart would (the engine's decoded, the module's
   restored), since after the prune the node can only restart from them;
2. the archive of ``first_seq..before-1``, written beside ``--to`` and renamed
   once synced, each record checked to link to the one before;
3. the archive read back from disk and verified (every record, its digest);
4. the prune: the records deleted and the checkpoint written in one durable
   write, the range compacted away.

Nothing is deleted unless every step before it passed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape

from node.core.errors import DeriveError, InvalidValueError, LogBusyError, LogError
from node.home import NodeHome
from node.log import DEFAULT_CODEC, ArchiveReader, Codec, EventLog, write_archive

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_UNAVAILABLE: Final = 2
PROJECT = Path(__file__).resolve().parents[2]
DEFAULT_MODULE = PROJECT / "wasm" / "channels.wasm"
CODECS: Final = {"gzip": Codec.GZIP, "xz": Codec.XZ}
_LATEST: Final = "snapshot"
MODULE_CACHE: Final = "cache"  # the node's compiled modules (node/engine/_node.py)
_ANY_ADDRESS: Final = "0x" + "00" * 20


class ArchiveRefused(Exception):
    """The prune would leave a log the node cannot restart from (or nothing to do)."""


def add_parser(commands: Any, add_home: Any) -> None:
    """Add ``log archive`` to the ``log`` subcommands."""
    archive = commands.add_parser(
        "archive", help="archive the records below a restart point, then prune them (node stopped)"
    )
    add_home(archive)
    archive.add_argument(
        "--before",
        required=True,
        metavar="SEQ",
        help="the first record kept; at most the restart snapshot's seq + 1"
        f" ('{_LATEST}': exactly that)",
    )
    archive.add_argument("--to", required=True, type=Path, metavar="FILE", help="the new archive")
    archive.add_argument(
        "--module", type=Path, default=DEFAULT_MODULE, help="the node's derivation module"
    )
    archive.add_argument(
        "--compression",
        choices=sorted(CODECS),
        default=next(name for name, codec in CODECS.items() if codec is DEFAULT_CODEC),
        help="how the archive is compressed",
    )
    archive.add_argument("--json", action="store_true", help="print the outcome as JSON")
    archive.set_defaults(handler=run_archive)


@dataclass(frozen=True)
class RestartPoint:
    """The snapshots a restart loads: the engine's at ``engine_seq``, the module's at
    ``module_seq`` (at or before it); records after ``module_seq`` must stay."""

    engine_seq: int
    module_seq: int


def restart_point(log: EventLog, module_path: Path, cache_dir: Path | None = None) -> RestartPoint:
    """Where the node would restart from, checked by loading both snapshots.

    Raises:
        ArchiveRefused: no engine snapshot, no module snapshot at or before it, or
            one of them does not load.
        DeriveError: the module cannot be loaded.
    """
    from node.derive import DeriveInstance, DeriveModule
    from node.engine import ENGINE_SNAPSHOT_KEY, EngineState, decode_state

    engine = log.latest_snapshot(ENGINE_SNAPSHOT_KEY)
    if engine is None:
        raise ArchiveRefused(
            "the log holds no engine snapshot to restart from: run the node until it takes"
            " one (every 10,000 records, and at a start after a long tail)"
        )
    try:
        # Decoding does not depend on whose state it is: any address will do.
        decode_state(engine.blob, EngineState(_ANY_ADDRESS, "", ""))
    except InvalidValueError as error:
        raise ArchiveRefused(
            f"the engine snapshot at {engine.seq} does not load: {error}"
        ) from None
    module = DeriveModule.from_file(module_path, cache_dir=cache_dir)
    snapshot = log.latest_snapshot(module.sha256, at_or_before=engine.seq)
    if snapshot is None:
        raise ArchiveRefused(
            f"no snapshot of {module.name} at or before the engine's at {engine.seq}:"
            " is --module the node's module?"
        )
    try:
        DeriveInstance(module).restore(snapshot.blob)
    except DeriveError as error:
        raise ArchiveRefused(
            f"{module.name} refuses its snapshot at {snapshot.seq}: {error}"
        ) from None
    return RestartPoint(engine.seq, snapshot.seq)


def choose_before(text: str, log: EventLog, point: RestartPoint) -> int:
    """The first record kept: ``--before`` checked against the restart point.

    Raises:
        ArchiveRefused: it is not a number, prunes nothing, or prunes records a restart
            replays.
    """
    highest = point.module_seq + 1
    if text == _LATEST:
        before = highest
    else:
        try:
            before = int(text)
        except ValueError:
            raise ArchiveRefused(f"--before {text!r}: expected a seq or '{_LATEST}'") from None
    if before > highest:
        raise ArchiveRefused(
            f"--before {before} is above the restart point: the node restarts from its"
            f" snapshots at record {point.module_seq} (engine at {point.engine_seq}) and"
            f" replays the records after it, so at most --before {highest}"
        )
    if before <= log.first_seq:
        raise ArchiveRefused(
            f"--before {before} prunes nothing: the live log starts at record {log.first_seq}"
        )
    return before


def _log_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def archive_and_prune(log: EventLog, before: int, target: Path, codec: Codec) -> dict[str, Any]:
    """Steps 2 to 4 of the module docstring; the figures of the run.

    Raises:
        ArchiveRefused: the archive read back fails its checks (nothing is pruned).
        InvalidValueError, LogError, OSError: as ``write_archive`` and ``EventLog.prune``.
    """
    first = log.first_seq
    bytes_before = _log_bytes(log.path)
    started = time.perf_counter()
    header = write_archive(
        target,
        log.read_raw(first, before - 1),
        first_seq=first,
        last_seq=before - 1,
        start_hash=log.checkpoint[1],
        codec=codec,
    )
    written = time.perf_counter()
    report = ArchiveReader(target).verify()
    if not report.ok:
        raise ArchiveRefused(
            f"the archive read back fails: record {report.first_bad_seq}:"
            f" {report.problem}; nothing was pruned"
        )
    verified = time.perf_counter()
    pruned = log.prune(before, archived_head=header.head_hash)
    done = time.perf_counter()
    return {
        "archive": str(target),
        "first_seq": header.first_seq,
        "last_seq": header.last_seq,
        "records": pruned,
        "head_hash": header.head_hash.hex(),
        "codec": codec.name.lower(),
        "raw_bytes": header.raw_bytes,
        "archive_bytes": target.stat().st_size,
        "log_bytes_before": bytes_before,
        "log_bytes_after": _log_bytes(log.path),
        "write_s": round(written - started, 3),
        "verify_s": round(verified - written, 3),
        "prune_s": round(done - verified, 3),
    }


def run_archive(namespace: argparse.Namespace) -> int:
    """Archive and prune; exit 1 when refused, 2 when the log cannot be opened."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    home = NodeHome(namespace.home)
    try:
        log = EventLog.open(home.log_path, create=False)
    except LogBusyError:
        console.print(
            f"[red]error:[/red] the log at {escape(str(home.log_path))} is in use: stop the"
            " node first (archive and prune need the log's only writer)"
        )
        return EXIT_UNAVAILABLE
    except LogError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        return EXIT_UNAVAILABLE
    with log:
        try:
            point = restart_point(log, namespace.module, home.root / MODULE_CACHE)
            before = choose_before(namespace.before, log, point)
            outcome = archive_and_prune(log, before, namespace.to, CODECS[namespace.compression])
        except (ArchiveRefused, DeriveError, InvalidValueError, LogError, OSError) as error:
            console.print(f"[red]refused:[/red] {escape(str(error))}")
            return EXIT_REFUSED
    _print_outcome(outcome, as_json=namespace.json)
    return EXIT_OK


def _print_outcome(outcome: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(outcome) + "\n")
        return
    ratio = outcome["archive_bytes"] / max(outcome["raw_bytes"], 1)
    Console(highlight=False).print(
        f"archived records {outcome['first_seq']}..{outcome['last_seq']} to"
        f" {outcome['archive']} ({outcome['archive_bytes']:,} bytes, {ratio:.0%} of"
        f" {outcome['raw_bytes']:,}; {outcome['codec']}) in {outcome['write_s']} s,"
        f" verified in {outcome['verify_s']} s; pruned {outcome['records']:,} records in"
        f" {outcome['prune_s']} s; the live log went from {outcome['log_bytes_before']:,} to"
        f" {outcome['log_bytes_after']:,} bytes and starts at record {outcome['last_seq'] + 1}"
        f" (checkpoint hash {outcome['head_hash']})",
        soft_wrap=True,
    )
