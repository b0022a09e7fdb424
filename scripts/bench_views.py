"""Benchmark the views: rows applied per second on a replay, and `scnode sql` latency.

Usage:
    python scripts/bench_views.py [--records 1000000] [--queries 20] [--dir DIR]

Writes the log of scripts/bench_derive.py (states, vouchers, chain events and
acknowledgements over 2,000 channels) into a node home, then replays it from
the start into a view of each module (wasm/channels.wasm, the engine's;
wasm/payments.wasm; the C example wasm/examples/kinds.wasm): records/s and row
changes applied/s into SQLite, the database size. Then times `scnode sql --home
DIR --json QUERY` (a whole process, as a user runs it: best and median of
--queries runs) and the same query in-process, for a few typical queries on the
engine's view of the replayed log. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_derive import write_log  # noqa: E402

from node.core.constants import views_catch_up_records_max  # noqa: E402
from node.derive import DeriveModule  # noqa: E402
from node.home import NodeHome  # noqa: E402
from node.log import EventLog  # noqa: E402
from node.views import ENGINE_VIEW, View, ViewCatalog, run_query  # noqa: E402

MODULES = {
    ENGINE_VIEW: ROOT / "wasm" / "channels.wasm",
    "payments": ROOT / "wasm" / "payments.wasm",
    "kinds": ROOT / "wasm" / "examples" / "kinds.wasm",
}
QUERIES = {
    "point lookup": "SELECT * FROM engine.channels WHERE channel_id ="
    " (SELECT channel_id FROM engine.channels ORDER BY last_seq DESC LIMIT 1)",
    "group by status": "SELECT status, count(*), u256_sum(paid) FROM engine.channels"
    " GROUP BY status",
    "top 10 by holdings": "SELECT c.channel_id, c.status, h.amount FROM engine.channels c"
    " JOIN engine.holdings h USING (channel_id) ORDER BY length(h.amount) DESC, h.amount DESC"
    " LIMIT 10",
}


def replay(home: NodeHome, name: str, path: Path) -> dict[str, float]:
    """A view of ``path`` folding the whole log from the start; its figures."""
    catalog = ViewCatalog(home.views_path)
    entry = catalog.add(name, path.read_bytes(), engine=name == ENGINE_VIEW)
    module = DeriveModule.from_file(path, cache_dir=home.root / "cache")
    with EventLog.open(home.log_path) as log:
        view = View(entry, module, catalog.database_path(name))
        started = time.perf_counter()
        view.open(log)
        while view.catch_up(log, views_catch_up_records_max):
            pass
        view.close()
        elapsed = time.perf_counter() - started
        assert view.error is None, view.error
        assert view.cursor == log.last_seq
    size = catalog.database_path(name).stat().st_size
    print(
        f"{name}: {view.cursor:,} records in {elapsed:.1f} s ({view.cursor / elapsed:,.0f}"
        f" records/s), {view.rows_applied:,} row changes ({view.rows_applied / elapsed:,.0f}"
        f" rows/s), database {size / 2**20:.1f} MiB"
    )
    return {
        "seconds": round(elapsed, 2),
        "records_per_s": round(view.cursor / elapsed),
        "rows": view.rows_applied,
        "rows_per_s": round(view.rows_applied / elapsed),
        "database_mib": round(size / 2**20, 1),
    }


def sql_latency(home: NodeHome, query: str, runs: int) -> dict[str, float]:
    """`scnode sql --json` as a process, and the query in-process: ms, best and median."""
    command = [sys.executable, "-m", "node.cli", "sql", "--home", str(home.root), "--json", query]
    process_ms = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        process_ms.append((time.perf_counter() - started) * 1000)
        assert result.returncode == 0, result.stderr
    catalog = ViewCatalog(home.views_path)
    databases = {entry.name: catalog.database_path(entry.name) for entry in catalog.entries()}
    query_ms = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = run_query(databases, query)
        query_ms.append((time.perf_counter() - started) * 1000)
    rows = len(answer.rows)
    return {
        "process_ms_best": round(min(process_ms), 1),
        "process_ms_median": round(statistics.median(process_ms), 1),
        "query_ms_best": round(min(query_ms), 2),
        "query_ms_median": round(statistics.median(query_ms), 2),
        "rows": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=20, help="runs of each query")
    parser.add_argument("--dir", type=Path, default=None, help="work here (default: a temp dir)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = NodeHome((options.dir or Path(scratch)) / "home")
        home.root.mkdir(parents=True, exist_ok=True)
        written_s = write_log(home.log_path, options.records)
        print(f"wrote {options.records:,} records in {written_s:.1f} s")
        replays = {name: replay(home, name, path) for name, path in MODULES.items()}
        latencies = {}
        for label, query in QUERIES.items():
            latencies[label] = sql_latency(home, query, options.queries)
            figures = latencies[label]
            print(
                f"scnode sql, {label} ({figures['rows']} rows): process best"
                f" {figures['process_ms_best']} ms, median {figures['process_ms_median']} ms;"
                f" the query alone median {figures['query_ms_median']} ms"
            )
    print(json.dumps({"records": options.records, "replay": replays, "sql": latencies}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
