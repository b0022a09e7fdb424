"""The conformance suite: golden logs and the answers a module should give.

A case is two files in the golden directory: ``NAME.batch``, a batch of framed
LogRecords (``u32 LE length || record``, the apply_batch format, the records as
the event log stores them), and ``NAME.json``::

    {"description": "...",
     "rejects": {"code": 4, "cursor": 7},          # optional: the log must be refused
     "queries": [{"query": <Query as JSON>, "expect": <QueryResult as JSON>}, ...]}

Each query's outcome is ``pass``, ``differs`` or ``unsupported`` (the module
answered BAD_QUERY to a query the golden answers: it offers another view).

Beside the queries, each case a module folds is checked for snapshots
(``_checks.py``): the same records give the same snapshot bytes whatever the
batches, restoring then folding the rest equals never restoring, and garbage or
truncated snapshots are refused with the state left as it was; and, for a module
with tables, that its row changes add up to its tables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from google.protobuf import json_format

from node.core.errors import DeriveError
from node.derive._checks import (
    CheckKind,
    CheckResult,
    GoldenCase,
    Outcome,
    check_snapshots,
    check_tables,
)
from node.derive._errors import RecordRejectedError
from node.derive._host import DeriveInstance, DeriveModule
from node.proto import derive_pb2

# What the engine asks of its module (node/engine): these queries, and snapshots.
ENGINE_QUERIES: Final = ("get_channel", "list_channels", "get_cursor")


def load_cases(directory: Path) -> list[GoldenCase]:
    """Every case in ``directory``, by name."""
    cases = []
    for spec_path in sorted(directory.glob("*.json")):
        spec: dict[str, Any] = json.loads(spec_path.read_text())
        queries = tuple(
            (
                json_format.ParseDict(item["query"], derive_pb2.Query()),
                json_format.ParseDict(item["expect"], derive_pb2.QueryResult()),
            )
            for item in spec["queries"]
        )
        rejects = spec.get("rejects")
        cases.append(
            GoldenCase(
                name=spec_path.stem,
                description=spec.get("description", ""),
                batch=spec_path.with_suffix(".batch").read_bytes(),
                rejects=(rejects["code"], rejects["cursor"]) if rejects else None,
                queries=queries,
            )
        )
    return cases


def describe_query(query: derive_pb2.Query) -> str:
    """A short name for a query: its kind and its arguments."""
    case = query.WhichOneof("query") or "empty"
    arguments = getattr(query, case, None) if case != "empty" else None
    if case == "get_channel" and arguments is not None:
        return f"get_channel {arguments.channel_id.hex()[:12]}"
    if case == "list_channels" and arguments is not None:
        return f"list_channels after={arguments.after.hex()[:12] or '-'} limit={arguments.limit}"
    return case


def _apply(module: DeriveModule, case: GoldenCase) -> tuple[DeriveInstance, CheckResult]:
    instance = DeriveInstance(module)
    log = CheckKind.LOG
    try:
        instance.apply_batch(case.batch)
    except RecordRejectedError as error:
        if case.rejects is None or case.rejects[0] != error.code:
            return instance, CheckResult(case.name, "", Outcome.DIFFERS, str(error), log)
        detail = f"refused: {error.detail}"
        return instance, CheckResult(case.name, "", Outcome.PASS, detail, log)
    if case.rejects is not None:
        detail = f"accepted a log it should refuse with code {case.rejects[0]}"
        return instance, CheckResult(case.name, "", Outcome.DIFFERS, detail, log)
    return instance, CheckResult(case.name, "", Outcome.PASS, "log folded", log)


def check_case(module: DeriveModule, case: GoldenCase) -> Iterator[CheckResult]:
    """Fold the case's log and compare every answer with the golden one; then check
    snapshots (and tables) on the same log."""
    try:
        instance, applied = _apply(module, case)
    except DeriveError as error:
        yield CheckResult(case.name, "", Outcome.DIFFERS, str(error), CheckKind.LOG)
        return
    yield applied
    if applied.outcome is not Outcome.PASS:
        return
    yield from _check_queries(instance, case)
    if case.rejects is None:
        yield from check_snapshots(module, case)
        if module.has_tables:
            yield from check_tables(module, case)


def _check_queries(instance: DeriveInstance, case: GoldenCase) -> Iterator[CheckResult]:
    for query, expected in case.queries:
        name = describe_query(query)
        try:
            actual = instance.query(query)
        except DeriveError as error:
            yield CheckResult(case.name, name, Outcome.DIFFERS, str(error))
            return
        if _same(actual, expected):
            yield CheckResult(case.name, name, Outcome.PASS)
        elif (
            actual.status == derive_pb2.QUERY_STATUS_BAD_QUERY
            and expected.status != derive_pb2.QUERY_STATUS_BAD_QUERY
        ):
            yield CheckResult(case.name, name, Outcome.UNSUPPORTED, actual.detail)
        else:
            yield CheckResult(case.name, name, Outcome.DIFFERS, _difference(expected, actual))


def _same(actual: derive_pb2.QueryResult, expected: derive_pb2.QueryResult) -> bool:
    """Equal answers; a refusal's detail is free text, so only its status counts."""
    if expected.status != derive_pb2.QUERY_STATUS_OK:
        return actual.status == expected.status
    return actual == expected


def _difference(expected: derive_pb2.QueryResult, actual: derive_pb2.QueryResult) -> str:
    want = json_format.MessageToDict(expected)
    got = json_format.MessageToDict(actual)
    keys = sorted(set(_flatten(want)) | set(_flatten(got)))
    flat_want, flat_got = _flatten(want), _flatten(got)
    for key in keys:
        if flat_want.get(key) != flat_got.get(key):
            return f"{key}: expected {flat_want.get(key)!r}, got {flat_got.get(key)!r}"
    return "answers differ"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def check_module(module: DeriveModule, directory: Path) -> list[CheckResult]:
    """Run every golden case in ``directory`` against ``module``."""
    results: list[CheckResult] = []
    for case in load_cases(directory):
        results.extend(check_case(module, case))
    return results


def engine_problems(results: list[CheckResult]) -> list[str]:
    """Why a module cannot be the engine's (empty: it can): a log folded otherwise than
    the golden one, a query the engine asks answered otherwise or not at all, a
    snapshot check failed. One line per check that failed, with the cases it failed in
    and the first failure's detail."""
    failed: dict[tuple[str, str], list[CheckResult]] = {}
    for result in results:
        if result.outcome is Outcome.PASS:
            continue
        what = result.query.split()[0] if result.kind is CheckKind.QUERY else result.query
        needed = result.kind is CheckKind.QUERY and what in ENGINE_QUERIES
        if result.kind in (CheckKind.LOG, CheckKind.SNAPSHOT) or needed:
            failed.setdefault((what or "log", result.outcome.value), []).append(result)
    problems = [
        f"{what} {outcome} in {', '.join(dict.fromkeys(r.case for r in failures))}"
        f" ({failures[0].detail})"
        for (what, outcome), failures in failed.items()
    ]
    if not any(r.kind is CheckKind.QUERY and r.outcome is Outcome.PASS for r in results):
        problems.append("no golden query is answered as the reference module answers it")
    return problems


def check_engine_module(module: DeriveModule, golden: Path, cache_dir: Path | None) -> list[str]:
    """``engine_problems`` of ``module`` on the suite in ``golden``; a pass is remembered
    in ``cache_dir`` (by the module's sha256 and the suite's), so a node checks a module
    once, not at every start."""
    digest = hashlib.sha256()
    for path in sorted(golden.glob("*")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    marker = None
    if cache_dir is not None:
        name = f"conformance-{module.sha256_hex}-{digest.hexdigest()[:16]}.passed"
        marker = cache_dir / name
        if marker.is_file():
            return []
    problems = engine_problems(check_module(module, golden))
    if not problems and marker is not None:
        marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker.write_text("the engine's conformance checks passed\n")
    return problems
