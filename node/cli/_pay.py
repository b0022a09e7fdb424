"""``scnode pay``: pay on a payment channel, once or many times in JSON-RPC batches."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from node.cli._common import fail, parse_amount, rpc_client
from node.cli._paying import BatchPayer, PaymentRun, pay_with_progress
from node.cli._tables import wei_text
from node.core.errors import ScnodeError


def register(subparsers: Any) -> None:
    """Add ``pay``."""
    pay = subparsers.add_parser("pay", help="pay on a payment channel")
    pay.add_argument("--channel", required=True, help="the channel id (0x...)")
    pay.add_argument("--amount", required=True, type=parse_amount, help="each payment")
    pay.add_argument("--count", type=_positive, default=1, help="how many payments (default 1)")
    pay.add_argument("--home", required=True, type=Path, help="the node's home")
    pay.add_argument("--json", action="store_true", help="print JSON")
    pay.set_defaults(handler=pay_command)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number from 1")
    return int(text)


def pay_command(namespace: argparse.Namespace) -> int:
    """Pay ``--count`` times ``--amount``; batches with a progress bar when more than one."""
    from node.engine import read_rpc_url
    from node.home import NodeHome
    from node.rpc import RpcConnectionError, RpcError, load_rpc_token

    console = None if namespace.json else Console()
    try:
        if namespace.count == 1:
            client = rpc_client(namespace.home)
            answer = client.call("pay", channel_id=namespace.channel, amount=str(namespace.amount))
            run = PaymentRun(1, int(answer["paid"]), 0.0)
        else:
            home = NodeHome(namespace.home)
            payer = BatchPayer(read_rpc_url(home), load_rpc_token(home))
            run = pay_with_progress(
                payer, namespace.channel, namespace.amount, namespace.count, console
            )
    except (ScnodeError, RpcError, RpcConnectionError, ValueError) as error:
        return fail("pay", error)
    if console is None:
        print(json.dumps(_run_json(namespace, run), indent=2))
    else:
        rate = f" in {run.seconds:.2f} s ({run.per_second:,.0f} payments/s)" if run.seconds else ""
        console.print(
            f"paid {run.count} × {wei_text(str(namespace.amount))}{rate};"
            f" total paid on {namespace.channel}: {wei_text(str(run.paid))}",
            soft_wrap=True,
        )
    return 0


def _run_json(namespace: argparse.Namespace, run: PaymentRun) -> dict[str, Any]:
    return {
        "channel_id": namespace.channel,
        "payments": run.count,
        "amount": str(namespace.amount),
        "paid": str(run.paid),
        "seconds": round(run.seconds, 6),
        "per_second": round(run.per_second, 1),
    }
