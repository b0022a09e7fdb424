"""``channel settle`` and ``ledger settle``: start a settlement on chain, then follow it
until its challenges are registered (or, with ``--wait``, until it pays out)."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from node.cli._common import fail, rpc_client
from node.cli._tables import wei_text
from node.core.errors import ScnodeError

_SETTLE_POLL_S = 2.0
_REGISTERED = ("CHALLENGED", "PAYING_OUT", "SETTLED")


def add_settle_arguments(settle: argparse.ArgumentParser) -> None:
    """``--channel``, ``--wait`` and ``--timeout``, shared by both settle commands."""
    settle.add_argument("--channel", required=True, help="the channel id (0x...)")
    settle.add_argument(
        "--wait", action="store_true", help="wait out the challenge and pay out (else run again)"
    )
    settle.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")


def run_settlement(
    namespace: argparse.Namespace, command: str, method: str, params: dict[str, Any]
) -> int:
    """Call ``method`` (which starts the settlement, or answers where it stands) until the
    stage wanted; print the result. The node finishes the settlement by itself either way.
    """
    from node.rpc import RpcConnectionError, RpcError

    console = None if namespace.json else Console()
    deadline = time.monotonic() + namespace.timeout
    wanted = ("SETTLED",) if namespace.wait else _REGISTERED
    try:
        client = rpc_client(namespace.home)
        answer = client.call(method, **params)
        status = console.status("settling on chain") if console else None
        with status or contextlib.nullcontext():
            while answer["stage"] not in (*wanted, "FAILED"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"still {answer['stage']} after {namespace.timeout:g} s")
                time.sleep(_SETTLE_POLL_S)
                answer = client.call(method, **params)
    except (ScnodeError, RpcError, RpcConnectionError, TimeoutError) as error:
        return fail(command, error)
    if console is None:
        print(json.dumps(answer, indent=2))
    else:
        console.print(settlement_text(answer), soft_wrap=True)
    return 1 if answer["stage"] == "FAILED" else 0


def settlement_text(answer: dict[str, Any]) -> str:
    """One line on where a settlement stands (pure)."""
    if answer["stage"] == "FAILED":
        return f"[red]settlement failed:[/red] {answer['failure']}"
    if answer["stage"] == "SETTLED":
        paid = answer.get("paid")
        by_vouchers = "" if paid is None else f"paid {wei_text(str(paid))} by vouchers; "
        return f"settled on chain: {by_vouchers}paid out to us {wei_text(str(answer['payout']))}"
    when = datetime.fromtimestamp(int(answer.get("finalizes_at") or 0), UTC).isoformat()
    return f"challenged on chain; the node pays out by itself after {when} (--wait to wait for it)"
