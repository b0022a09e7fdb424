"""The views' JSON-RPC methods: ``query_sql``, ``list_views``, ``add_view``, ``remove_view``.

``query_sql`` is the read-only SQL interface (docs/adr/0009-views.md): params
``{"sql": "SELECT ..."}`` (optionally ``time_limit_ms``), answer ``{"columns":
[...], "rows": [[...], ...], "truncated": bool}``; a refused, failed or too long
query is the error ``QUERY_FAILED`` with the reason.
"""

from __future__ import annotations

from node.core.constants import (
    views_module_bytes_max,
    views_sql_text_bytes_max,
    views_sql_time_limit_ms,
    views_sql_time_limit_ms_max,
)
from node.core.errors import InvalidValueError
from node.rpc import (
    ErrorCode,
    JsonValue,
    MethodRegistry,
    Param,
    ParamType,
    RpcError,
    hex_bytes,
    integer,
)
from node.views._catalog import ViewError
from node.views._service import ViewService
from node.views._sql import SqlError


def _sql_text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(field, "expected a string")
    if len(value.encode()) > views_sql_text_bytes_max:
        raise InvalidValueError(field, f"longer than {views_sql_text_bytes_max} bytes")
    return value


def _view_name(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidValueError(field, "expected a view name")
    return value


SQL = ParamType("sql", _sql_text)
VIEW_NAME = ParamType("view name", _view_name)


class _ViewMethods:
    def __init__(self, service: ViewService) -> None:
        self.service = service

    async def query_sql(self, sql: str, time_limit_ms: int) -> JsonValue:
        try:
            answer = await self.service.query(sql, time_limit_ms)
        except SqlError as error:
            raise RpcError(ErrorCode.QUERY_FAILED, str(error)) from None
        return answer.to_json()  # type: ignore[return-value]

    async def list_views(self) -> JsonValue:
        return self.service.views()  # type: ignore[return-value]

    async def add_view(self, name: str, wasm: bytes) -> JsonValue:
        try:
            return await self.service.add(name, wasm)  # type: ignore[return-value]
        except ViewError as error:
            raise RpcError(ErrorCode.INVALID_PARAMS, str(error)) from None

    async def remove_view(self, name: str) -> JsonValue:
        try:
            await self.service.remove(name)
        except ViewError as error:
            raise RpcError(ErrorCode.INVALID_PARAMS, str(error)) from None
        return True


def register_view_methods(registry: MethodRegistry, service: ViewService) -> None:
    """Add the views' methods to ``registry``."""
    methods = _ViewMethods(service)
    limit = Param(
        "time_limit_ms",
        integer(1, views_sql_time_limit_ms_max),
        required=False,
        default=views_sql_time_limit_ms,
    )
    registry.register(
        "query_sql",
        methods.query_sql,
        params=[Param("sql", SQL), limit],
        timeout_ms=views_sql_time_limit_ms_max + 5_000,
        description="One read-only SQL statement over the views' tables: columns, rows"
        " (BLOBs as 0x-hex), truncated.",
    )
    registry.register(
        "list_views", methods.list_views, description="The views: module, state, cursor, tables."
    )
    registry.register(
        "add_view",
        methods.add_view,
        params=[
            Param("name", VIEW_NAME),
            Param("wasm", hex_bytes(bytes_max=views_module_bytes_max)),
        ],
        description="Add a view module (0x-hex bytes) under a name; it folds the log from its"
        " start in the background.",
    )
    registry.register(
        "remove_view",
        methods.remove_view,
        params=[Param("name", VIEW_NAME)],
        description="Stop a view and delete its database.",
    )
