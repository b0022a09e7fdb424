"""A running RPC server per test, on 127.0.0.1 with a fresh token."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio

from node.rpc import RpcClient, RpcServer, generate_rpc_token
from tests.rpc.rpc_support import Calls, build_registry

READ_TIMEOUT_MS = 300  # short, so slow-client tests finish fast
HEADER_TIMEOUT_MS = 200  # likewise, and below READ_TIMEOUT_MS as the server requires
SUBSCRIBER_QUEUE_MAX = 8
CONNECTIONS_MAX = 64
UNAUTHENTICATED_CONNECTIONS_MAX = 16  # well below the 64 concurrent clients of one test


@dataclass
class Served:
    """A running server, its URL, its token and a client."""

    server: RpcServer
    url: str
    token: str
    client: RpcClient
    calls: Calls


async def serve(nursery: trio.Nursery, **options: int) -> Served:
    """Start a server in ``nursery`` with the test registry; ``options`` override limits."""
    calls = Calls()
    token = generate_rpc_token()
    server = RpcServer(
        build_registry(calls),
        token,
        read_timeout_ms=options.get("read_timeout_ms", READ_TIMEOUT_MS),
        header_timeout_ms=options.get("header_timeout_ms", HEADER_TIMEOUT_MS),
        write_timeout_ms=options.get("write_timeout_ms", READ_TIMEOUT_MS),
        connections_max=options.get("connections_max", CONNECTIONS_MAX),
        unauthenticated_connections_max=options.get(
            "unauthenticated_connections_max", UNAUTHENTICATED_CONNECTIONS_MAX
        ),
        subscriber_queue_max=options.get("subscriber_queue_max", SUBSCRIBER_QUEUE_MAX),
    )
    url = await nursery.start(server.run)
    return Served(server, url, token, RpcClient(url, token, timeout_ms=5_000), calls)


@pytest.fixture
async def served(nursery: trio.Nursery) -> Served:
    return await serve(nursery)
