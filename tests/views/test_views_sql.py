"""Read-only SQL over the views: one SELECT, no writes, no ATTACH or files, a time limit,
a row limit; `scnode sql` prints it as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from node.cli._sql import register
from node.views import SqlError, ViewCatalog, run_query


@pytest.fixture
def databases(tmp_path: Path) -> dict[str, Path]:
    """Two view databases, as a node writes them (WAL), with a few rows."""
    found = {}
    for name, rows in (("first", 3), ("second", 20_050)):
        path = tmp_path / f"{name}.sqlite"
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, amount TEXT, raw BLOB) STRICT"
        )
        connection.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            [(n, str(10**20 + n), bytes([n % 256])) for n in range(rows)],
        )
        connection.execute(f"CREATE TABLE only_{name} (id INTEGER PRIMARY KEY) STRICT")
        connection.commit()
        connection.close()
        found[name] = path
    return found


def _digest(paths: dict[str, Path]) -> list[str]:
    return [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths.values()]


def test_a_select_answers_columns_and_rows(databases: dict[str, Path]) -> None:
    answer = run_query(databases, "SELECT id, amount, raw FROM first.items ORDER BY id")
    assert answer.columns == ["id", "amount", "raw"]
    assert answer.rows[1] == [1, str(10**20 + 1), "0x01"]
    assert not answer.truncated
    # A name no other view has is found without its view's name; one both have, in the
    # first view (attach order).
    assert run_query(databases, "SELECT count(*) FROM only_second").rows == [[0]]
    assert run_query(databases, "SELECT count(*) FROM items").rows == [[3]]


def test_u256_sum_adds_decimal_amounts_exactly(databases: dict[str, Path]) -> None:
    answer = run_query(databases, "SELECT u256_sum(amount) FROM first.items")
    assert answer.rows == [[str(3 * 10**20 + 3)]]


def test_more_rows_than_the_limit_are_cut(databases: dict[str, Path]) -> None:
    answer = run_query(databases, "SELECT id FROM second.items", rows_max=100)
    assert len(answer.rows) == 100
    assert answer.truncated
    assert len(run_query(databases, "SELECT id FROM second.items").rows) == 10_000


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO first.items VALUES (99, '1', x'00')",
        "UPDATE first.items SET amount = '0'",
        "DELETE FROM first.items",
        "DROP TABLE first.items",
        "CREATE TABLE first.more (a)",
        "CREATE TEMP TABLE scratch (a)",
        "CREATE TEMP VIEW scratch AS SELECT 1",
        "ALTER TABLE first.items ADD COLUMN b",
        "ATTACH DATABASE '/tmp/scnode-test-other.sqlite' AS other",
        "DETACH DATABASE first",
        "VACUUM first INTO '/tmp/scnode-test-vacuum.sqlite'",
        "PRAGMA first.journal_mode = DELETE",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/evil')",
        "BEGIN",
        "ANALYZE first",
    ],
)
def test_writes_attaches_and_files_are_refused(databases: dict[str, Path], sql: str) -> None:
    before = _digest(databases)
    with pytest.raises(SqlError):
        run_query(databases, sql)
    assert _digest(databases) == before
    assert not Path("/tmp/scnode-test-other.sqlite").exists()
    assert not Path("/tmp/scnode-test-vacuum.sqlite").exists()


def test_the_refusal_says_why(databases: dict[str, Path]) -> None:
    with pytest.raises(SqlError, match="not authorized: views are read-only"):
        run_query(databases, "DELETE FROM first.items")
    with pytest.raises(SqlError, match="one statement at a time"):
        run_query(databases, "SELECT 1; SELECT 2")
    with pytest.raises(SqlError, match="no such table"):
        run_query(databases, "SELECT * FROM nowhere")


def test_schema_pragmas_answer(databases: dict[str, Path]) -> None:
    answer = run_query(databases, "PRAGMA first.table_info(items)")
    assert [row[1] for row in answer.rows] == ["id", "amount", "raw"]


def test_a_long_query_is_interrupted_at_its_time_limit(databases: dict[str, Path]) -> None:
    endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r"
    with pytest.raises(SqlError, match="ran past its time limit of 200 ms"):
        run_query(databases, endless, time_limit_ms=200)
    with pytest.raises(SqlError, match="outside 1"):
        run_query(databases, "SELECT 1", time_limit_ms=0)


def test_huge_strings_are_refused(databases: dict[str, Path]) -> None:
    with pytest.raises(SqlError, match="too big"):
        run_query(databases, "SELECT zeroblob(100000000)")


def _scnode_sql(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scnode")
    register(parser.add_subparsers(dest="command"))
    namespace = parser.parse_args(["sql", *argv])
    code: int = namespace.handler(namespace)
    return code


@pytest.fixture
def home(tmp_path: Path, databases: dict[str, Path]) -> Path:
    """A home whose catalog lists the two databases as views."""
    home = tmp_path / "home"
    catalog = ViewCatalog(home / "views")
    for name, path in databases.items():
        catalog.add(name, name.encode())  # any bytes: `scnode sql` reads databases only
        path.rename(catalog.database_path(name))
    return home


def test_scnode_sql_prints_a_table_json_and_csv(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT id, raw FROM first.items ORDER BY id"
    assert _scnode_sql(["--home", str(home), query]) == 0
    out = capsys.readouterr().out
    assert "0x02" in out
    assert "3 rows" in out
    assert _scnode_sql(["--home", str(home), "--json", query]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "columns": ["id", "raw"],
        "rows": [[0, "0x00"], [1, "0x01"], [2, "0x02"]],
        "truncated": False,
    }
    assert _scnode_sql(["--home", str(home), "--csv", query]) == 0
    assert capsys.readouterr().out.splitlines() == ["id,raw", "0,0x00", "1,0x01", "2,0x02"]


def test_scnode_sql_refuses_writes_and_long_queries(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _scnode_sql(["--home", str(home), "DELETE FROM first.items"]) == 1
    assert "not authorized" in capsys.readouterr().err
    endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r"
    assert _scnode_sql(["--home", str(home), "--time-limit-ms", "100", endless]) == 1
    assert "time limit of 100 ms" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _scnode_sql(["--home", str(home), "--time-limit-ms", "-1", "SELECT 1"])


def test_scnode_sql_without_views_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _scnode_sql(["--home", str(tmp_path), "SELECT 1"]) == 1
    assert "no views in" in capsys.readouterr().err
