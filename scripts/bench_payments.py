"""Benchmark: Alice pays Bob through Irene on a virtual channel, every voucher logged.

Usage: python scripts/bench_payments.py [--payments N] [--rounds R] [--dir DIR] [--profile]
                                        [--verbose] [--per-call] [--metrics]

Starts a devnet (anvil and the contracts) and Irene, Alice and Bob as separate
``scnode run`` processes joined over libp2p on 127.0.0.1, funds the ledger
channels Alice–Irene and Irene–Bob, then measures:

* time to first payment, over R rounds (median): from the ``create_payment_channel``
  call at Alice (through Irene) until Bob's ``received`` is above zero, the first
  ``pay`` being sent as soon as Alice's VirtualFund objective is done;
* the sustained rate: N payments from Alice in JSON-RPC batches (a few in flight),
  rate = N / the time until Bob's ``received`` equals their total;
* CPU seconds of the three node processes (from /proc) per 1,000 payments;
* log bytes per payment at Alice and Bob.

Payments go as ``pay`` calls making a batch's payments each (``--per-call``: one call
per payment, in JSON-RPC batches); the node covers the payments of a step with one
voucher either way.

``--profile`` runs the nodes under cProfile and prints each one's top functions.
``--metrics`` runs them with ``--metrics 127.0.0.1:0`` (to measure what counting costs)
and prints Bob's scrape at the end. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's node
sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio
from devnet_nodes import ScriptNode, print_profiles, start_path, wait_done, wait_until

from node.chain import devnet_down, devnet_up
from node.cli import BatchPayer
from node.log import EventLog
from node.rpc import RpcClient, RpcError

ETH = 10**18
PAYMENT_WEI = 1_000
TIMEOUT_S = 120.0
POLL_S = 0.001


def received(bob: ScriptNode, channel: str) -> int:
    """What Bob accepted on ``channel``; 0 while he does not know it yet."""
    try:
        return int(bob.call("get_payment_channel", channel_id=channel)["received"])
    except RpcError:
        return 0


class ReceivedWatch:
    """Bob's ``payment_channel_updated`` notifications, in a thread: the moment his
    ``received`` reaches a total, without polling him (a poll costs him a view decode)."""

    def __init__(self, bob: ScriptNode, channel: str, total: int) -> None:
        self.reached = threading.Event()  # also set when the stream ended first
        self.at = 0.0
        self.ended: str | None = None
        self._subscribed = threading.Event()
        self._thread = threading.Thread(
            target=trio.run, args=(self._watch, bob, channel, total), daemon=True
        )
        self._thread.start()
        if not self._subscribed.wait(TIMEOUT_S):
            raise RuntimeError("no WebSocket subscription to Bob")

    async def _watch(self, bob: ScriptNode, channel: str, total: int) -> None:
        client = RpcClient(bob.rpc_url, bob.token)
        try:
            async with client.notifications(["payment_channel_updated"]) as stream:
                self._subscribed.set()
                async for notification in stream:
                    params = notification.params
                    if params.get("id") == channel and int(str(params["received"])) >= total:
                        self.at = time.perf_counter()
                        self.reached.set()
                        return
            self.ended = f"Bob's notifications ended ({stream.close_code} {stream.close_reason})"
        except Exception as error:  # reported by the main thread
            self.ended = f"watching Bob's notifications failed: {error!r}"
        self.reached.set()


def open_ledgers(irene: ScriptNode, alice: ScriptNode, bob: ScriptNode) -> None:
    """Alice–Irene and Irene–Bob, each funded by its first party only."""
    for a, b in ((alice, irene), (irene, bob)):
        created = a.call("create_ledger_channel", counterparty=b.address, amount=str(100 * ETH))
        wait_done([a, b], created["objective_id"], timeout_s=TIMEOUT_S, poll_s=0.01)


def first_payment(
    alice: ScriptNode, irene: ScriptNode, bob: ScriptNode
) -> tuple[dict[str, float], str]:
    """Milliseconds from create_payment_channel to each step until Bob's first accepted
    voucher (``total``: that one); the channel."""
    start = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str) -> None:
        steps[name] = (time.perf_counter() - start) * 1000

    created = alice.call(
        "create_payment_channel",
        counterparty=bob.address,
        amount=str(ETH),
        intermediaries=[irene.address],
    )
    step("create answered")
    channel = created["channel_id"]
    wait_done([alice], created["objective_id"], timeout_s=TIMEOUT_S, poll_s=POLL_S)
    step("funded at Alice")
    alice.call("pay", channel_id=channel, amount=str(PAYMENT_WEI))
    step("pay answered")
    wait_until(
        "Bob's first voucher",
        lambda: received(bob, channel) > 0,
        timeout_s=TIMEOUT_S,
        poll_s=POLL_S,
    )
    step("total")
    return steps, channel


def close(alice: ScriptNode, bob: ScriptNode, channel: str) -> None:
    closed = alice.call("close_payment_channel", channel_id=channel)
    wait_done([alice, bob], closed["objective_id"], timeout_s=TIMEOUT_S, poll_s=0.01)


def last_seq(node: ScriptNode) -> int:
    return int(node.call("get_node_info")["log_last_seq"])


def log_bytes(node: ScriptNode, first: int, last: int) -> int:
    """Stored bytes of the node's records ``first..last`` (the node stopped)."""
    with EventLog.open(node.home / "log", read_only=True) as log:
        return sum(len(raw) for _, raw in log.read_raw(first, last))


def sustained(
    nodes: list[ScriptNode], channel: str, count: int, *, per_call: bool
) -> dict[str, Any]:
    """``count`` payments on ``channel``: rate until Bob has them all, CPU spent, and the
    log records each node added (seq ranges, measured in bytes once they stopped)."""
    _, alice, bob = nodes
    before = received(bob, channel)
    seqs = {node.name: last_seq(node) for node in (alice, bob)}
    expected = before + count * PAYMENT_WEI
    cpu_before = [node.cpu_seconds() for node in nodes]
    client_before = time.process_time()
    payer = BatchPayer(alice.rpc_url, alice.token, per_call=per_call)
    answered: dict[str, Any] = {}

    def send() -> None:
        try:
            answered["run"] = payer.pay(channel, PAYMENT_WEI, count)
        except Exception as error:  # reported by the main thread
            answered["error"] = error

    watch = ReceivedWatch(bob, channel, expected)
    start = time.perf_counter()
    sender = threading.Thread(target=send)
    sender.start()
    sender.join()
    if "error" in answered:
        raise RuntimeError(f"paying failed: {answered['error']}")
    if not watch.reached.wait(TIMEOUT_S):
        got = (received(bob, channel) - before) // PAYMENT_WEI
        raise RuntimeError(f"Bob received {got} of {count} payments in {TIMEOUT_S} s")
    if watch.ended is not None:
        raise RuntimeError(f"{watch.ended}; see {bob.home / 'node.log.txt'}")
    seconds = watch.at - start
    cpu = [node.cpu_seconds() - cpu_before[index] for index, node in enumerate(nodes)]
    client = time.process_time() - client_before
    run = answered["run"]
    print(
        f"{count} payments: answered at Alice in {run.seconds:.2f} s ({run.per_second:,.0f}/s),"
        f" all received by Bob in {seconds:.2f} s ({count / seconds:,.0f}/s)"
    )
    for name, used in [*((node.name, cpu[i]) for i, node in enumerate(nodes)), ("client", client)]:
        print(f"  {name}: {used:.2f} CPU-s, {used / count * 1e6:.0f} µs/payment")
    if received(bob, channel) != expected:
        raise RuntimeError(f"Bob received {received(bob, channel)}, Alice paid {expected}")
    ranges = {node.name: (seqs[node.name] + 1, last_seq(node)) for node in (alice, bob)}
    return {
        "payments_per_s": count / seconds,
        "cpu_s": sum(cpu),
        "cpu_us": {node.name: cpu[i] / count * 1e6 for i, node in enumerate(nodes)},
        "ranges": ranges,
    }


def print_scrape(node: ScriptNode) -> None:
    """The node's ``scnode_`` metrics, as Prometheus scrapes them."""
    assert node.metrics_url is not None
    with urllib.request.urlopen(node.metrics_url, timeout=TIMEOUT_S) as response:
        text = response.read().decode()
    print(f"---- {node.name}: curl -s {node.metrics_url} | grep '^scnode_' | grep -v _bucket")
    for line in text.splitlines():
        if line.startswith("scnode_") and "_bucket{" not in line:
            print(line)


def run(
    directory: Path,
    payments: int,
    rounds: int,
    *,
    profile: bool,
    verbose: bool,
    per_call: bool,
    metrics: bool,
) -> dict[str, Any]:
    names = ("Irene", "Alice", "Bob")
    devnet_up(directory / "chain", nodes=3)
    nodes: list[ScriptNode] = []
    options = ("--metrics", "127.0.0.1:0") if metrics else ()
    try:
        nodes = start_path(
            directory,
            directory / "chain",
            names,
            verbose=verbose,
            profile=profile,
            options=options,
        )
        irene, alice, bob = nodes
        print(f"nodes: Irene {irene.address}, Alice {alice.address}, Bob {bob.address}")
        open_ledgers(irene, alice, bob)
        firsts = []
        for index in range(rounds):
            steps, channel = first_payment(alice, irene, bob)
            firsts.append(steps["total"])
            shown = ", ".join(f"{name} {ms:.0f}" for name, ms in steps.items() if name != "total")
            print(f"round {index + 1}: first payment after {steps['total']:.0f} ms ({shown})")
            close(alice, bob, channel)
        _, channel = first_payment(alice, irene, bob)
        figures = sustained(nodes, channel, payments, per_call=per_call)
        if metrics:
            print_scrape(bob)
    finally:
        for node in nodes:
            node.stop()
        devnet_down(directory / "chain")
    per_payment = {
        name: log_bytes(node, *figures["ranges"][name]) / payments
        for name, node in (("Alice", nodes[1]), ("Bob", nodes[2]))
    }
    print(
        "log bytes per payment: "
        + ", ".join(f"{name} {size:.1f}" for name, size in per_payment.items())
    )
    if profile:
        print_profiles(directory, names)
    first_ms = statistics.median(firsts)
    print(f"time to first payment: median {first_ms:.0f} ms over {rounds} rounds")
    return {
        "mode": "per call" if per_call else "payments per call",
        "payments_per_s": round(figures["payments_per_s"]),
        "time_to_first_payment_ms": round(first_ms, 1),
        "cpu_s_per_1000_payments": round(figures["cpu_s"] * 1000 / payments, 3),
        "cpu_us_per_payment": {k: round(v, 1) for k, v in figures["cpu_us"].items()},
        "log_bytes_per_payment": {k: round(v, 2) for k, v in per_payment.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--profile", action="store_true", help="profile the nodes (slower)")
    parser.add_argument(
        "--verbose", action="store_true", help="nodes log every step (DIR/NAME/node.log.txt)"
    )
    parser.add_argument(
        "--per-call",
        action="store_true",
        help="one `pay` call per payment (JSON-RPC batches of them) instead of `payments`",
    )
    parser.add_argument(
        "--metrics", action="store_true", help="nodes serve Prometheus metrics (its cost)"
    )
    args = parser.parse_args()
    scratch = args.dir is None
    directory = args.dir or Path(tempfile.mkdtemp(prefix="scnode-bench-"))
    try:
        result = run(
            directory,
            args.payments,
            args.rounds,
            profile=args.profile,
            verbose=args.verbose,
            per_call=args.per_call,
            metrics=args.metrics,
        )
    finally:
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)
    print(
        json.dumps(
            {"benchmark": "payments", "payments": args.payments, "metrics": args.metrics, **result}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
