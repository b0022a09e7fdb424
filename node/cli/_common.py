"""Helpers of the commands that talk to a running node: amounts, its JSON-RPC client,
objectives started and awaited, errors."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from node.core import constants
from node.core.errors import ScnodeError

_AMOUNT = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>eth|gwei|wei)?", re.IGNORECASE)
_UNITS = {"eth": 10**18, "gwei": 10**9, "wei": 1}
_POLL_S = 0.2
_AMOUNT_DIGITS_MAX = 200
_FINISHED = ("DONE", "FAILED")


def parse_amount(text: str) -> int:
    """``"1.5eth"``, ``"20 gwei"`` or ``"1000"`` (wei) as wei.

    Raises:
        argparse.ArgumentTypeError: not an amount, or not a whole number of wei.
    """
    match = _AMOUNT.fullmatch(text.strip())
    if match is None or len(text) > _AMOUNT_DIGITS_MAX // 2:
        raise argparse.ArgumentTypeError(f"{text!r}: expected e.g. 1000, 20gwei or 1.5eth")
    try:
        with localcontext() as context:
            context.prec = _AMOUNT_DIGITS_MAX  # exact: uint256 amounts have 78 digits
            value = Decimal(match["number"]) * _UNITS[(match["unit"] or "wei").lower()]
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number") from None
    if value != value.to_integral_value() or value > constants.uint256_max:
        raise argparse.ArgumentTypeError(f"{text!r}: not a whole number of wei in uint256")
    return int(value)


def rpc_client(home: Path) -> Any:
    """A blocking JSON-RPC client of the node running in ``home``."""
    from node.engine import read_rpc_url
    from node.home import NodeHome
    from node.rpc import RpcSyncClient, load_rpc_token

    node_home = NodeHome(home)
    return RpcSyncClient(read_rpc_url(node_home), load_rpc_token(node_home))


def fail(command: str, error: Exception) -> int:
    """Say why ``scnode COMMAND`` failed; returns its exit code."""
    print(f"scnode {command}: {error}", file=sys.stderr)
    return 1


def wait_objective(
    client: Any, objective_id: str, timeout_s: float, console: Console | None
) -> Any:
    """Poll the objective until it is done or failed, showing its pause point."""
    deadline = time.monotonic() + timeout_s
    info = client.call("get_objective", objective_id=objective_id)
    status = console.status(f"{objective_id[:30]}...") if console else None
    if status is not None:
        status.start()
    try:
        while info["status"] not in _FINISHED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{objective_id} still waiting for {info['waiting_for']}")
            if status is not None:
                status.update(f"waiting for {info['waiting_for'] or 'the node'} ...")
            time.sleep(_POLL_S)
            info = client.call("get_objective", objective_id=objective_id)
    finally:
        if status is not None:
            status.stop()
    return info


def run_objective(
    namespace: argparse.Namespace,
    command: str,
    started: Callable[[Any], Any],
    shown: Callable[[Any, str], Any],
    table: Callable[[list[Any]], Table],
) -> int:
    """Start an objective (``started(client)``), wait for it unless ``--no-wait``, then
    print its channel (``shown(client, channel_id)``) as ``table`` or JSON."""
    from node.rpc import RpcConnectionError, RpcError

    console = None if namespace.json else Console()
    try:
        client = rpc_client(namespace.home)
        created = started(client)
        info: Any = {"status": "STARTED", "id": created["objective_id"]}
        if not namespace.no_wait:
            info = wait_objective(client, created["objective_id"], namespace.timeout, console)
        channel = shown(client, created["channel_id"])
    except (ScnodeError, RpcError, RpcConnectionError, TimeoutError) as error:
        return fail(command, error)
    if console is None:
        print(json.dumps({"objective": info, "channel": channel}, indent=2))
    else:
        console.print(f"{created['objective_id']}: {info['status']}", soft_wrap=True)
        if info.get("failure"):
            console.print(f"[red]failed:[/red] {info['failure']}")
        console.print(table([channel]))
    return 0 if info["status"] != "FAILED" else 1
