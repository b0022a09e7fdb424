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
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.chain import devnet_down, devnet_node_key, devnet_up  # noqa: E402
from node.home import NodeHome  # noqa: E402
from node.rpc import RpcSyncClient, load_rpc_token  # noqa: E402

POLL_S = 0.002
TIMEOUT_S = 60.0


class Node:
    """A ``scnode run`` process and its RPC client."""

    def __init__(self, home: Path, devnet: Path, peers: list[str]) -> None:
        command = [sys.executable, "-m", "node.engine._cli", "run", "--home", str(home)]
        command += ["--devnet", str(devnet)]
        for peer in peers:
            command += ["--peer", peer]
        self.stderr = (home / "node.stderr").open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        assert self.process.stdout is not None
        lines: dict[str, str] = {}
        while "JSON-RPC on" not in lines:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit(f"node in {home} did not start; see {home / 'node.stderr'}")
            key, _, value = line.strip().rpartition(" ")
            lines[key] = value
        self.address = lines["scnode node"]
        self.multiaddr = lines["listening on"]
        self.rpc = RpcSyncClient(lines["JSON-RPC on"], load_rpc_token(NodeHome(home)))

    def status(self, objective_id: str) -> str:
        try:
            info: Any = self.rpc.call("get_objective", objective_id=objective_id)
        except Exception as error:  # not known yet: the peer's message is on its way
            if "no objective" in str(error):
                return "UNKNOWN"
            raise
        if info["status"] == "FAILED":
            raise SystemExit(f"{objective_id} failed: {info['failure']}")
        return str(info["status"])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=15)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.stderr.close()


def wait_done(nodes: list[Node], objective_id: str) -> float:
    """Seconds until the objective is done on every node."""
    start = time.perf_counter()
    for node in nodes:
        while node.status(objective_id) != "DONE":
            if time.perf_counter() - start > TIMEOUT_S:
                raise SystemExit(f"{objective_id} not done within {TIMEOUT_S} s")
            time.sleep(POLL_S)
    return time.perf_counter() - start


def run_rounds(alice: Node, bob: Node, rounds: int) -> tuple[list[float], list[float]]:
    opens, closes = [], []
    for index in range(rounds):
        start = time.perf_counter()
        created: Any = alice.rpc.call(
            "create_ledger_channel",
            counterparty=bob.address,
            amount=str(10**15),
            counterparty_amount=str(10**15),
        )
        wait_done([alice, bob], created["objective_id"])
        opens.append(time.perf_counter() - start)
        start = time.perf_counter()
        closed: Any = bob.rpc.call("close_ledger_channel", channel_id=created["channel_id"])
        wait_done([bob, alice], closed["objective_id"])
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
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    devnet = devnet_up(directory / "chain", nodes=2)
    nodes: list[Node] = []
    try:
        for index, name in enumerate(("alice", "bob")):
            NodeHome(directory / name).initialise(node_key=devnet_node_key(index))
        nodes.append(Node(directory / "alice", directory / "chain", []))
        nodes.append(Node(directory / "bob", directory / "chain", [nodes[0].multiaddr]))
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
