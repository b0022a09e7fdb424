"""The conformance suite: golden logs and the answers a module should give.

A case is two files in the golden directory: ``NAME.batch``, a batch of framed
LogRecords (``u32 LE length || record``, the apply_batch format), and
``NAME.json``::

    {"description": "...",
     "rejects": {"code": 4, "cursor": 7},          # optional: the log must be refused
     "queries": [{"query": <Query as JSON>, "expect": <QueryResult as JSON>}, ...]}

Each query's outcome is ``pass``, ``differs`` or ``unsupported`` (the module
answered BAD_QUERY to a query the golden answers: it offers another view).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from node.core.errors import DeriveError
from node.derive._errors import RecordRejectedError
from node.derive._host import DeriveInstance, DeriveModule
from node.proto import derive_pb2


class Outcome(Enum):
    PASS = "pass"
    DIFFERS = "differs"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class CheckResult:
    """One golden query (or the log itself, when ``query`` is empty) and its outcome."""

    case: str
    query: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class GoldenCase:
    name: str
    description: str
    batch: bytes
    rejects: tuple[int, int] | None
    queries: tuple[tuple[derive_pb2.Query, derive_pb2.QueryResult], ...]


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
    try:
        instance.apply_batch(case.batch)
    except RecordRejectedError as error:
        if case.rejects is None or case.rejects[0] != error.code:
            return instance, CheckResult(case.name, "", Outcome.DIFFERS, str(error))
        return instance, CheckResult(case.name, "", Outcome.PASS, f"refused: {error.detail}")
    if case.rejects is not None:
        detail = f"accepted a log it should refuse with code {case.rejects[0]}"
        return instance, CheckResult(case.name, "", Outcome.DIFFERS, detail)
    return instance, CheckResult(case.name, "", Outcome.PASS, "log folded")


def check_case(module: DeriveModule, case: GoldenCase) -> Iterator[CheckResult]:
    """Fold the case's log and compare every answer with the golden one."""
    try:
        instance, applied = _apply(module, case)
    except DeriveError as error:
        yield CheckResult(case.name, "", Outcome.DIFFERS, str(error))
        return
    yield applied
    if applied.outcome is not Outcome.PASS:
        return
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
