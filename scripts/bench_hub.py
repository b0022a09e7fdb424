"""Benchmark: a hub. One intermediary, four payers and four payees, each in its own
``scnode run`` process on a devnet; a ledger between each of them and the hub; then, for
each size N (default 100 and 1,000): N virtual channels opened at once through the hub,
and payments on all of them at once.

Usage: python scripts/bench_hub.py [--channels 100,1000] [--payments-per-channel P]
                                   [--dir DIR] [--verbose] [--profile]

Reports, per N: virtual channels opened per second through the hub (from the first
``create_payment_channel`` call until every channel is open at its payer and payee);
aggregate payments per second (``pay`` calls of many payments each, on every channel at
once, until every payee holds them all); the hub's resident memory per open virtual
channel; and how each figure grows from the smallest N to the largest. The last line
is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's node
sys.path.insert(0, str(Path(__file__).resolve().parent))

from devnet_nodes import ScriptNode, print_profiles, start_path, wait_done, wait_until
from rich.console import Console
from rich.table import Table

from node.chain import devnet_down, devnet_up
from node.rpc import RpcError, RpcSyncClient

ETH = 10**18
SIDES = 4  # payers, and payees
CHANNEL_FUNDS = 10**9  # wei each virtual channel locks
PAYMENT_WEI = 1
TIMEOUT_S = 600.0
POLL_S = 0.1  # between reads of what is still waiting
CALLS_PER_BATCH = 100  # JSON-RPC batch: the most calls a node takes in one request


def resident_mib(node: ScriptNode) -> float:
    """The process's resident memory (VmRSS), MiB."""
    for line in Path(f"/proc/{node.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {node.name}")


def cpu_since(nodes: list[ScriptNode], before: list[float]) -> list[float]:
    """Each node's CPU seconds since ``before`` was read."""
    return [node.cpu_seconds() - then for node, then in zip(nodes, before, strict=True)]


def client_of(node: ScriptNode) -> RpcSyncClient:
    return RpcSyncClient(node.rpc_url, node.token, timeout_ms=120_000)


def open_ledgers(hub: ScriptNode, payers: list[ScriptNode], payees: list[ScriptNode]) -> None:
    """Each payer funds a ledger with the hub; the hub funds one with each payee."""
    created = []
    for leader, follower in [*((p, hub) for p in payers), *((hub, p) for p in payees)]:
        answer = leader.call(
            "create_ledger_channel", counterparty=follower.address, amount=str(ETH)
        )
        created.append((leader, follower, answer["objective_id"]))
    for leader, follower, objective_id in created:
        wait_done([leader, follower], objective_id, timeout_s=TIMEOUT_S, poll_s=POLL_S)


def open_channels(
    hub: ScriptNode, payers: list[ScriptNode], payees: list[ScriptNode], count: int
) -> tuple[list[tuple[ScriptNode, ScriptNode, str]], float]:
    """``count`` virtual channels, payer i to payee (i + k) % 4 through the hub, asked for
    all at once (a batch per payer); returns them and the seconds until all are open."""
    plans: dict[int, list[int]] = {i: [] for i in range(SIDES)}
    for k in range(count):
        plans[k % SIDES].append((k // SIDES + k) % SIDES)
    channels: list[tuple[ScriptNode, ScriptNode, str]] = []
    start = time.perf_counter()
    errors: list[BaseException] = []

    def ask(index: int) -> None:
        payer, client = payers[index], client_of(payers[index])
        try:
            targets = plans[index]
            for first in range(0, len(targets), CALLS_PER_BATCH):
                calls = [
                    (
                        "create_payment_channel",
                        {
                            "counterparty": payees[target].address,
                            "amount": str(CHANNEL_FUNDS),
                            "intermediaries": [hub.address],
                        },
                    )
                    for target in targets[first : first + CALLS_PER_BATCH]
                ]
                answers = client.call_batch(calls)  # type: ignore[arg-type]
                for target, answer in zip(targets[first:], answers, strict=False):
                    if isinstance(answer, RpcError):
                        raise answer
                    channels.append((payer, payees[target], str(answer["channel_id"])))
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(SIDES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"opening channels failed: {errors[0]!r}")
    waiting = list(channels)

    def all_open() -> bool:
        # Objectives still running, a cheap read, first: reading every channel's view
        # while they open would cost the nodes more than opening them.
        if any(busy(node) for node in (hub, *payers, *payees)):
            return False
        waiting[:] = still_opening(payers, payees, waiting)
        return not waiting

    wait_until(f"{count} channels open", all_open, timeout_s=TIMEOUT_S, poll_s=POLL_S)
    return channels, time.perf_counter() - start


def busy(node: ScriptNode) -> bool:
    """Whether ``node`` has objectives running."""
    return int(client_of(node).call("get_node_info")["objectives_running"]) > 0


def still_opening(
    payers: list[ScriptNode],
    payees: list[ScriptNode],
    channels: list[tuple[ScriptNode, ScriptNode, str]],
) -> list[tuple[ScriptNode, ScriptNode, str]]:
    """The channels not yet open at their payer or their payee: one batch of reads per
    node, of only those (the nodes answer them in their loop, between steps)."""
    waiting: set[str] = set()
    for node in (*payers, *payees):
        mine = [c for payer, payee, c in channels if node in (payer, payee)]
        for first in range(0, len(mine), CALLS_PER_BATCH):
            batch = mine[first : first + CALLS_PER_BATCH]
            calls = [("get_payment_channel", {"channel_id": c}) for c in batch]
            answers = client_of(node).call_batch(calls)  # type: ignore[arg-type]
            for channel, answer in zip(batch, answers, strict=True):
                if isinstance(answer, RpcError) or answer["status"] != "OPEN":
                    waiting.add(channel)
    return [entry for entry in channels if entry[2] in waiting]


def pay_all(
    payers: list[ScriptNode],
    payees: list[ScriptNode],
    channels: list[tuple[ScriptNode, ScriptNode, str]],
    per_channel: int,
) -> float:
    """``per_channel`` payments on every channel at once (each payer: batches of one
    ``pay`` call per channel making all its payments); seconds until every payee holds
    them all."""
    errors: list[BaseException] = []
    start = time.perf_counter()

    def pay(payer: ScriptNode) -> None:
        client = client_of(payer)
        mine = [c for p, _, c in channels if p is payer]
        try:
            for first in range(0, len(mine), CALLS_PER_BATCH):
                calls = [
                    (
                        "pay",
                        {"channel_id": c, "amount": str(PAYMENT_WEI), "payments": per_channel},
                    )
                    for c in mine[first : first + CALLS_PER_BATCH]
                ]
                for answer in client.call_batch(calls):  # type: ignore[arg-type]
                    if isinstance(answer, RpcError):
                        raise answer
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=pay, args=(p,)) for p in payers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"paying failed: {errors[0]!r}")
    expected = str(per_channel * PAYMENT_WEI)

    def received_all() -> bool:
        for payee in payees:
            mine = [c for _, p, c in channels if p is payee]
            for first in range(0, len(mine), CALLS_PER_BATCH):
                calls = [
                    ("get_payment_channel", {"channel_id": c})
                    for c in mine[first : first + CALLS_PER_BATCH]
                ]
                answers = client_of(payee).call_batch(calls)  # type: ignore[arg-type]
                if any(isinstance(a, RpcError) or a["received"] != expected for a in answers):
                    return False
        return True

    wait_until("every payee paid", received_all, timeout_s=TIMEOUT_S, poll_s=POLL_S)
    return time.perf_counter() - start


def print_table(rows: list[dict[str, float]]) -> None:
    table = Table(title="hub: 1 intermediary, 4 payers, 4 payees")
    for column in ("channels", "opened/s", "payments/s", "hub KiB/channel", "hub RSS MiB"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            f"{row['channels']:,}",
            f"{row['channels_per_s']:.0f}",
            f"{row['payments_per_s']:,.0f}",
            f"{row['hub_kib_per_channel']:.1f}",
            f"{row['hub_rss_mib']:.0f}",
        )
    Console().print(table)


def run(
    directory: Path, sizes: list[int], per_channel: int, *, verbose: bool, profile: bool
) -> dict[str, Any]:
    names = (
        "Hub",
        *(f"Payer{i}" for i in range(1, SIDES + 1)),
        *(f"Payee{i}" for i in range(1, SIDES + 1)),
    )
    devnet_up(directory / "chain", nodes=len(names))
    nodes: list[ScriptNode] = []
    rows: list[dict[str, float]] = []
    try:
        nodes = start_path(directory, directory / "chain", names, verbose=verbose, profile=profile)
        hub, payers, payees = nodes[0], nodes[1 : SIDES + 1], nodes[SIDES + 1 :]
        open_ledgers(hub, payers, payees)
        print(f"{len(nodes)} nodes, {2 * SIDES} ledgers with the hub")
        open_so_far = 0
        for size in sizes:
            memory_before = resident_mib(hub)
            cpu_before = [node.cpu_seconds() for node in nodes]
            channels, open_s = open_channels(hub, payers, payees, size)
            memory_after = resident_mib(hub)
            cpu_open = cpu_since(nodes, cpu_before)
            open_so_far += size
            cpu_before = [node.cpu_seconds() for node in nodes]
            pay_s = pay_all(payers, payees, channels, per_channel)
            cpu_pay = cpu_since(nodes, cpu_before)
            row = {
                "channels": size,
                "channels_open_at_hub": open_so_far,
                "channels_per_s": size / open_s,
                "payments_per_s": size * per_channel / pay_s,
                "hub_kib_per_channel": (memory_after - memory_before) * 1024 / size,
                "hub_rss_mib": memory_after,
                "hub_cpu_ms_per_channel": cpu_open[0] * 1000 / size,
                "edge_cpu_ms_per_channel": sum(cpu_open[1:]) * 1000 / size,
                "hub_cpu_us_per_payment": cpu_pay[0] * 1e6 / (size * per_channel),
            }
            rows.append(row)
            print(
                f"{size} channels: opened in {open_s:.1f} s ({row['channels_per_s']:.0f}/s),"
                f" {size * per_channel:,} payments in {pay_s:.2f} s"
                f" ({row['payments_per_s']:,.0f}/s), hub +{memory_after - memory_before:.1f} MiB"
                f" ({row['hub_kib_per_channel']:.1f} KiB/channel); CPU per channel opened:"
                f" hub {row['hub_cpu_ms_per_channel']:.1f} ms, payers and payees"
                f" {row['edge_cpu_ms_per_channel']:.1f} ms"
            )
    finally:
        for node in nodes:
            node.stop()
        devnet_down(directory / "chain")
    if profile:
        print_profiles(directory, names[:2])
    print_table(rows)
    first, last = rows[0], rows[-1]
    growth = last["channels"] / first["channels"]
    return {
        "rows": [{k: round(v, 1) for k, v in row.items()} for row in rows],
        "channels_per_s_ratio": round(last["channels_per_s"] / first["channels_per_s"], 2),
        "payments_per_s_ratio": round(last["payments_per_s"] / first["payments_per_s"], 2),
        "size_ratio": growth,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="100,1000", help="sizes, comma-separated")
    parser.add_argument("--payments-per-channel", type=int, default=100)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--verbose", action="store_true", help="nodes log every step")
    parser.add_argument(
        "--profile", action="store_true", help="run the nodes under cProfile; print the hub's"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.channels.split(",")]
    scratch = args.dir is None
    directory = args.dir or Path(tempfile.mkdtemp(prefix="scnode-hub-"))
    try:
        result = run(
            directory,
            sizes,
            args.payments_per_channel,
            verbose=args.verbose,
            profile=args.profile,
        )
    finally:
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps({"benchmark": "hub", **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
