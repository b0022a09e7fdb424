"""The devnet demo: three nodes in their own processes fund and settle ledger channels.

    python scripts/demo.py [--dir DIR] [--keep]

It starts anvil with the contracts, runs Alice, Irene and Bob as separate
``scnode run`` processes joined over libp2p on 127.0.0.1, opens the ledger
channels Alice–Irene and Irene–Bob funded on chain, shows each node's channels
as its derivation module sees them, closes Alice–Irene and settles it on chain,
stops the nodes, verifies their event logs and prints the final balances.
Everything it started is stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from node.engine import channels_table

PROJECT = Path(__file__).resolve().parent.parent
ETH = 10**18
_START_TIMEOUT_S = 60.0
_OBJECTIVE_TIMEOUT_S = 120.0
_POLL_S = 0.05
console = Console(width=120)


@dataclass
class DemoNode:
    """One ``scnode run`` process."""

    name: str
    home: Path
    process: subprocess.Popen[str]
    address: str
    peer_id: str
    multiaddr: str
    rpc_url: str

    def call(self, method: str, **params: Any) -> Any:
        from node.home import NodeHome
        from node.rpc import RpcSyncClient, load_rpc_token

        client = RpcSyncClient(self.rpc_url, load_rpc_token(NodeHome(self.home)))
        return client.call(method, **params)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_node(name: str, home: Path, devnet: Path, peers: list[str]) -> DemoNode:
    """``scnode run`` in its own process; returns once it printed its RPC URL."""
    command = [sys.executable, "-m", "node.engine._cli", "run", "--home", str(home)]
    command += ["--devnet", str(devnet), "--verbose"]
    for peer in peers:
        command += ["--peer", peer]
    with (home / "node.log.txt").open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    assert process.stdout is not None
    lines: dict[str, str] = {}
    deadline = time.monotonic() + _START_TIMEOUT_S
    while "JSON-RPC on" not in lines:
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"{name} did not start; see {home / 'node.log.txt'}")
        key, _, value = line.strip().rpartition(" ")
        lines[key] = value
    return DemoNode(
        name,
        home,
        process,
        lines["scnode node"],
        lines["peer id"],
        lines["listening on"],
        lines["JSON-RPC on"],
    )


def wait_objective(nodes: list[DemoNode], objective_id: str, what: str) -> None:
    """Show the pause point until the objective is done on every node."""
    deadline = time.monotonic() + _OBJECTIVE_TIMEOUT_S
    with console.status(what) as status:
        for node in nodes:
            while True:
                try:
                    info = node.call("get_objective", objective_id=objective_id)
                except Exception as error:  # the peer's message may still be on its way
                    if "no objective" not in str(error):
                        raise
                    info = {"status": "UNKNOWN", "waiting_for": "the proposal"}
                if info["status"] == "DONE":
                    break
                if info["status"] == "FAILED":
                    raise RuntimeError(f"{node.name}: {objective_id} failed: {info['failure']}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{objective_id} not done in {_OBJECTIVE_TIMEOUT_S} s")
                status.update(f"{what}: {node.name} waits for {info['waiting_for']}")
                time.sleep(_POLL_S)
    console.print(f"  [green]done[/green] {what}")


def open_channel(a: DemoNode, b: DemoNode, mine: int, theirs: int) -> str:
    created = a.call(
        "create_ledger_channel",
        counterparty=b.address,
        amount=str(mine),
        counterparty_amount=str(theirs),
    )
    console.print(f"{a.name} asks to open a ledger channel with {b.name}: {created['channel_id']}")
    wait_objective([a, b], created["objective_id"], f"funding {a.name}–{b.name} on chain")
    return str(created["channel_id"])


def show_channels(nodes: list[DemoNode], title: str) -> None:
    console.rule(title)
    for node in nodes:
        channels = node.call("get_all_ledger_channels")
        table = channels_table(channels)
        table.title = f"{node.name}'s channels, as its derivation module derives them"
        console.print(table)


def nodes_table(nodes: list[DemoNode]) -> Table:
    """One row per node: its address, then its multiaddr and RPC URL beneath."""
    table = Table(title="nodes")
    table.add_column("node")
    table.add_column("address · multiaddr · JSON-RPC", no_wrap=True)
    for node in nodes:
        table.add_row(node.name, f"{node.address}\n{node.multiaddr}\n{node.rpc_url}")
    return table


def balances_table(rpc_url: str, nodes: list[DemoNode], title: str) -> Table:
    from web3 import HTTPProvider, Web3

    w3 = Web3(HTTPProvider(rpc_url))
    table = Table(title=title)
    table.add_column("node")
    table.add_column("address")
    table.add_column("ETH", justify="right")
    for node in nodes:
        balance = Decimal(w3.eth.get_balance(Web3.to_checksum_address(node.address))) / ETH
        table.add_row(node.name, node.address, f"{balance:.6f}")
    return table


def verify_logs(nodes: list[DemoNode]) -> None:
    from node.log import EventLog

    table = Table(title="event logs after the nodes stopped")
    for column in ("node", "records", "head hash", "hash chain"):
        table.add_column(column)
    for node in nodes:
        with EventLog.open(node.home / "log", read_only=True) as log:
            report = log.verify()
            table.add_row(
                node.name,
                str(log.last_seq),
                log.head_hash.hex()[:16] + "...",
                "[green]verified[/green]" if report.ok else f"[red]{report.problem}[/red]",
            )
            if not report.ok:
                raise RuntimeError(f"{node.name}'s log is broken: {report.problem}")
    console.print(table)


def run_demo(directory: Path) -> None:
    """The whole demo in ``directory``; stops what it started."""
    from node.chain import devnet_down, devnet_node_key, devnet_up
    from node.home import NodeHome

    console.rule("[bold]scnode devnet demo")
    console.print("Starting anvil and deploying the adjudicator, the apps and a test token ...")
    devnet = devnet_up(directory / "chain", nodes=3)
    console.print(f"chain {devnet.chain_id} at {devnet.rpc_url}, adjudicator {devnet.adjudicator}")
    nodes: list[DemoNode] = []
    try:
        names = ("Irene", "Alice", "Bob")
        for index, name in enumerate(names):
            NodeHome(directory / name.lower()).initialise(node_key=devnet_node_key(index))
        console.print("Starting Irene, then Alice and Bob connected to her by multiaddr ...")
        nodes.append(start_node("Irene", directory / "irene", directory / "chain", []))
        for name in names[1:]:
            home = directory / name.lower()
            nodes.append(start_node(name, home, directory / "chain", [nodes[0].multiaddr]))
        irene, alice, bob = nodes
        console.print(nodes_table(nodes))
        console.print(balances_table(devnet.rpc_url, nodes, "balances before"))
        console.rule("Opening ledger channels, funded on chain")
        alice_irene = open_channel(alice, irene, 5 * ETH, 5 * ETH)
        open_channel(irene, bob, 3 * ETH, 2 * ETH)
        show_channels(nodes, "Channels after funding")
        console.rule("Closing Alice–Irene and settling it on chain")
        closed = alice.call("close_ledger_channel", channel_id=alice_irene)
        wait_objective([alice, irene], closed["objective_id"], "closing Alice–Irene")
        show_channels([alice, irene], "Channels after settlement")
        console.print(balances_table(devnet.rpc_url, nodes, "balances after settlement"))
    finally:
        for node in nodes:
            node.stop()
        console.print(f"Stopped {len(nodes)} nodes.")
        if nodes:
            verify_logs(nodes)
        devnet_down(directory / "chain")
        console.print("Stopped the devnet.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="scnode-demo-"))
    try:
        run_demo(directory)
    except Exception as error:
        console.print(f"[red]demo failed:[/red] {error}")
        return 1
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
        elif args.keep:
            console.print(f"Kept {directory}: node homes, logs and node output.")
    console.print(json.dumps({"demo": "ok"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
