"""Benchmark: open and close ledger channels between two nodes on anvil.

Usage: python scripts/bench_open_close.py [--rounds N] [--dir DIR]

Starts a devnet (anvil and the contracts), two ``scnode run`` processes joined
over libp2p on 127.0.0.1, then for each round: ``create_ledger_channel`` until
the DirectFund objective is done on both nodes (open), then
``close_ledger_channel`` until the DirectDefund objective is done on both and
the adjudicator holds nothing (settled). Times are wall clock through the
JSON-RPC interface, polled every few milliseconds. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devnet_nodes import ScriptNode, start_path, wait_done

from node.chain import devnet_down, devnet_up

POLL_S = 0.002
TIMEOUT_S = 60.0


def run_rounds(alice: ScriptNode, bob: ScriptNode, rounds: int) -> tuple[list[float], list[float]]:
    opens, closes = [], []
    for index in range(rounds):
        start = time.perf_counter()
        created: Any = alice.call(
            "create_ledger_channel",
            counterparty=bob.address,
            amount=str(10**15),
            counterparty_amount=str(10**15),
        )
        wait_done([alice, bob], created["objective_id"], timeout_s=TIMEOUT_S, poll_s=POLL_S)
        opens.append(time.perf_counter() - start)
        start = time.perf_counter()
        closed: Any = bob.call("close_ledger_channel", channel_id=created["channel_id"])
        wait_done([bob, alice], closed["objective_id"], timeout_s=TIMEOUT_S, poll_s=POLL_S)
        closes.append(time.perf_counter() - start)
        print(
            f"round {index + 1}: open {opens[-1] * 1000:.0f} ms, settle {closes[-1] * 1000:.0f} ms"
        )
    return opens, closes


def summary(name: str, samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    figures = {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000,
        "min_ms": ordered[0] * 1000,
        "max_ms": ordered[-1] * 1000,
    }
    print(
        f"{name}: median {figures['median_ms']:.0f} ms, p90 {figures['p90_ms']:.0f} ms,"
        f" min {figures['min_ms']:.0f} ms, max {figures['max_ms']:.0f} ms"
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    scratch = args.dir is None
    directory = args.dir or Path(tempfile.mkdtemp(prefix="scnode-bench-"))
    devnet = devnet_up(directory / "chain", nodes=2)
    nodes: list[ScriptNode] = []
    try:
        nodes = start_path(directory, directory / "chain", ("alice", "bob"), verbose=False)
        print(f"anvil {devnet.rpc_url}; nodes {nodes[0].address}, {nodes[1].address}")
        opens, closes = run_rounds(nodes[0], nodes[1], args.rounds)
    finally:
        for node in nodes:
            node.stop()
        devnet_down(directory / "chain")
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)
    result = {
        "benchmark": "open_close",
        "rounds": args.rounds,
        "open": summary("create_ledger_channel -> open on both", opens),
        "settle": summary("close_ledger_channel -> settled on both", closes),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
