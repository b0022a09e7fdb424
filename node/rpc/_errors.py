"""JSON-RPC error codes and the exceptions handlers and clients raise."""

from __future__ import annotations

import enum

from node.core.errors import ScnodeError
from node.rpc._json import JsonValue

# Codes the node's own handlers use lie in this range (inclusive); codes from
# -32000 to -32009 belong to the server itself (auth, timeouts).
application_code_min = -32099
application_code_max = -32010


class ErrorCode(enum.IntEnum):
    """Error codes of scnode's JSON-RPC interface."""

    # JSON-RPC 2.0.
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    # The server.
    UNAUTHORISED = -32001
    TIMEOUT = -32002
    OVERLOADED = -32003
    # The node's handlers (application_code_min..application_code_max).
    OBJECTIVE_FAILED = -32010
    CHANNEL_NOT_FOUND = -32011
    CHAIN_ERROR = -32012
    OBJECTIVE_NOT_FOUND = -32013
    INSUFFICIENT_FUNDS = -32014
    PEER_UNREACHABLE = -32015
    INVALID_STATE = -32016
    QUERY_FAILED = -32017  # a read-only SQL query was refused, failed or ran out of time


class RpcError(ScnodeError):
    """A JSON-RPC error: raised by handlers, and by clients on an error response.

    Args:
        code: the JSON-RPC error code (see ``ErrorCode``).
        message: one sentence for a person.
        data: optional JSON detail for a program.
    """

    def __init__(self, code: int, message: str, data: JsonValue = None) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"code: expected an int, got {type(code).__name__}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, JsonValue]:
        """The ``error`` member of a JSON-RPC response."""
        error: dict[str, JsonValue] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class RpcConnectionError(ScnodeError):
    """A client could not reach the node or got an answer that is not JSON-RPC."""
