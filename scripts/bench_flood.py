"""Benchmark: honest payments while a hostile peer floods the payee with junk.

Usage: python scripts/bench_flood.py [--junk-mib 1024] [--payments N] [--rounds R]
                                     [--flood-rounds F] [--rpc-s S] [--junk KIND]
                                     [--dir DIR] [--profile] [--verbose]

Starts a devnet and Alice and Bob as ``scnode run`` processes, funds a ledger Alice–Bob
and a payment channel on it, then measures:

* honest throughput: rounds of N payments from Alice (JSON-RPC batches) until Bob
  holds them all: R rounds unloaded before the flood and R after it (the machine's
  load drifts), and F rounds while a third peer (``python -m node.testing._attacker``,
  its own process) floods Bob with JUNK_MIB MiB of valid envelopes he must refuse, at
  full speed, acknowledging nothing he sends back (the flood runs S seconds with RPC
  calls only first, and goes on with RPC calls only after the F rounds);
* the bytes of the log records the flood caused at Bob, per MiB of junk (read from his
  log once he stopped), and the growth of his log directory on disk;
* Bob's resident memory (VmRSS) before the flood, its peak during it, and after;
* Bob's JSON-RPC latency (``get_node_info``, p50 and p99) during the flood.

Targets: throughput under flood >= 70% of unloaded, log growth <= 1% of the junk,
memory growth <= 100 MiB after 1 GiB of junk, RPC p99 < 100 ms. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_payments import ReceivedWatch, received
from devnet_nodes import ScriptNode, start_path, wait_done

from node.chain import devnet_down, devnet_up, read_devnet
from node.cli import BatchPayer
from node.home import NodeHome
from node.rpc import RpcSyncClient
from node.testing import directory_bytes, log_share, rss_kib

ETH = 10**18
PAYMENT_WEI = 1_000
TIMEOUT_S = 300.0
PROBE_PAUSE_S = 0.02  # between two RPC probes of Bob: ~50 calls/s
THROUGHPUT_SHARE_MIN = 0.70
LOG_SHARE_MAX = 0.01
RSS_MIB_GROWTH_MAX = 100
RPC_MS_P99_MAX = 100.0


@dataclass
class Probe:
    """Bob's RPC latencies (by phase) and resident memory, sampled in a thread."""

    bob: ScriptNode
    phase: str = "idle"
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    failures: int = 0
    rss_kib_peak: int = 0
    rss_kib_samples: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, KiB)
    queues_max: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Probe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def p99(self, phase: str) -> float:
        return p99(self.latencies_ms.get(phase, []))

    def _run(self) -> None:
        client = RpcSyncClient(self.bob.rpc_url, self.bob.token)
        while not self._stop.is_set():
            phase = self.phase
            started = time.perf_counter()
            try:
                info: dict[str, Any] = client.call("get_node_info")  # type: ignore[assignment]
                queues: dict[str, int] = info["queues"]
            except Exception:  # counted: a node that does not answer misses the target
                self.failures += 1
            else:
                for name, size in queues.items():
                    self.queues_max[name] = max(self.queues_max.get(name, 0), size)
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.latencies_ms.setdefault(phase, []).append(elapsed_ms)
            rss = rss_kib(self.bob.process.pid)
            self.rss_kib_peak = max(self.rss_kib_peak, rss)
            self.rss_kib_samples.append((time.monotonic(), rss))
            time.sleep(PROBE_PAUSE_S)


class Flooder:
    """The attacker process and the JSON lines it prints."""

    def __init__(self, target: str, junk_mib: float, junk: str, consensus_app: str) -> None:
        command = [
            sys.executable,
            "-m",
            "node.testing._attacker",
            "--target",
            target,
            "--mib",
            str(junk_mib),
            "--junk",
            junk,
            "--consensus-app",
            consensus_app,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.started = _json_line(self.process.stdout, "flooding")
        self.address: str = self.started["address"]

    def running(self) -> bool:
        return self.process.poll() is None

    def result(self) -> dict[str, Any]:
        """What it sent and heard, once it is done."""
        done = _json_line(self.process.stdout, "done")
        self.process.wait(timeout=TIMEOUT_S)
        return done


def _json_line(stream: IO[str] | None, event: str) -> dict[str, Any]:
    assert stream is not None
    for line in stream:
        if line.startswith("{"):
            message: dict[str, Any] = json.loads(line)
            if message.get("event") == event:
                return message
    raise RuntimeError(f"the attacker ended before {event!r}")


def open_channel(alice: ScriptNode, bob: ScriptNode) -> str:
    """A ledger Alice–Bob and a payment channel on it; returns the channel."""
    ledger = alice.call("create_ledger_channel", counterparty=bob.address, amount=str(100 * ETH))
    wait_done([alice, bob], ledger["objective_id"], timeout_s=TIMEOUT_S, poll_s=0.01)
    created = alice.call(
        "create_payment_channel", counterparty=bob.address, amount=str(10 * ETH), intermediaries=[]
    )
    wait_done([alice, bob], created["objective_id"], timeout_s=TIMEOUT_S, poll_s=0.01)
    return str(created["channel_id"])


def payment_round(alice: ScriptNode, bob: ScriptNode, channel: str, count: int) -> float:
    """``count`` payments; the seconds until Bob holds them all."""
    cpu_before = bob.cpu_seconds()
    expected = received(bob, channel) + count * PAYMENT_WEI
    watch = ReceivedWatch(bob, channel, expected)
    start = time.perf_counter()
    BatchPayer(alice.rpc_url, alice.token).pay(channel, PAYMENT_WEI, count)
    if not watch.reached.wait(TIMEOUT_S) or watch.ended is not None:
        raise RuntimeError(f"Bob did not receive {count} payments: {watch.ended}")
    seconds = watch.at - start
    print(
        f"  {time.strftime('%H:%M:%S')} {count / seconds:,.0f} payments/s;"
        f" Bob busy {(bob.cpu_seconds() - cpu_before) / seconds:.0%} of a core"
    )
    return seconds


def rounds(alice: ScriptNode, bob: ScriptNode, channel: str, count: int, times: int) -> list[float]:
    """``times`` rounds of ``count`` payments; each round's payments/s."""
    return [count / payment_round(alice, bob, channel, count) for _ in range(times)]


def rounds_while(flooder: Flooder, net: Net, count: int, times: int) -> list[float]:
    """Up to ``times`` payment rounds while the flood lasts (at least one); each
    round's payments/s."""
    rates: list[float] = []
    while not rates or (flooder.running() and len(rates) < times):
        rates.extend(rounds(net.alice, net.bob, net.channel, count, 1))
    return rates


def flood_figures(
    net: Net, probe: Probe, arguments: argparse.Namespace, consensus_app: str
) -> dict[str, Any]:
    """The flood: RPC calls alone for ``--rpc-s``, then ``--flood-rounds`` of payments,
    then RPC calls alone until it ends (so that the memory it leaves is the junk's, not
    the log's of many more payments); Bob's log position and memory before it."""
    bob = net.bob
    info = bob.call("get_node_info")
    log_bytes_before = directory_bytes(NodeHome(bob.home).log_path)
    rss_before = rss_kib(bob.process.pid)
    probe.rss_kib_peak = 0
    started = time.monotonic()
    flooder = Flooder(bob.multiaddr, arguments.junk_mib, arguments.junk, consensus_app)
    try:
        probe.phase = "flood"
        deadline = time.monotonic() + arguments.rpc_s
        while flooder.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        probe.phase = "flood and payments"
        rates = rounds_while(flooder, net, arguments.payments, arguments.flood_rounds)
        probe.phase = "flood"
        attack = flooder.result()
    finally:
        probe.phase = "after"
        if flooder.running():
            flooder.process.kill()
    rss_after = rss_kib(bob.process.pid)
    quarters = _quarters(probe.rss_kib_samples, started, time.monotonic())
    return {
        "rss_mib_growth_by_quarter": [
            round((kib - rss_before) / 1024, 1) if kib else None for kib in quarters
        ],
        "rates": rates,
        "attack": attack,
        "attacker": flooder.address,
        "after_seq": int(info["log_last_seq"]),
        "log_bytes_before": log_bytes_before,
        "rss_kib": (rss_before, max(probe.rss_kib_peak, rss_after), rss_after),
    }


def _quarters(samples: list[tuple[float, int]], start: float, end: float) -> list[int]:
    """The largest sample in each quarter of ``start``..``end`` (0: none there)."""
    quarter_s = (end - start) / 4
    found = [0, 0, 0, 0]
    for at, value in samples:
        index = int((at - start) // quarter_s) if quarter_s > 0 else -1
        if 0 <= index < 4:
            found[index] = max(found[index], value)
    return found


@dataclass
class Net:
    """Alice pays Bob on ``channel``."""

    alice: ScriptNode
    bob: ScriptNode
    channel: str


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else max(values, default=0)


def log_figures(bob: ScriptNode, flood: dict[str, Any]) -> dict[str, Any]:
    """What the flood made Bob log, read once he stopped."""
    log_path = NodeHome(bob.home).log_path
    share = log_share(log_path, flood["attacker"], after_seq=flood["after_seq"])
    junk_bytes = int(flood["attack"]["flood"]["bytes"])
    return {
        "log_bytes_per_junk_mib": round(share.peer_bytes / max(junk_bytes / 2**20, 1e-9)),
        "log_share_of_junk": round(share.peer_bytes / max(junk_bytes, 1), 5),
        "log_records": dict(share.records),
        "log_disk_bytes_added": directory_bytes(log_path) - flood["log_bytes_before"],
    }


def summarise(
    unloaded: list[float], flood: dict[str, Any], probe: Probe, bob: ScriptNode
) -> dict[str, Any]:
    """The figures and the targets, once Bob stopped."""
    attack = flood["attack"]["flood"]
    before, peak, after = flood["rss_kib"]
    flood_only = probe.latencies_ms.get("flood", [])
    unloaded_rate = statistics.median(unloaded)
    flood_rate = statistics.median(flood["rates"])
    figures: dict[str, Any] = {
        "payments_per_s_unloaded": round(unloaded_rate),
        "payments_per_s_flood": round(flood_rate),
        "throughput_share": round(flood_rate / unloaded_rate, 3),
        "junk_mib": round(attack["bytes"] / 2**20, 1),
        "junk_mib_per_s": attack["mib_per_s"],
        "junk_envelopes": attack["envelopes"],
        "attacker_cpu_share": round(flood["attack"]["cpu_s"] / max(attack["seconds"], 1e-9), 2),
        **log_figures(bob, flood),
        "rss_mib_before": round(before / 1024, 1),
        "rss_mib_growth_peak": round((peak - before) / 1024, 1),
        "rss_mib_growth_after": round((after - before) / 1024, 1),
        "rss_mib_growth_by_quarter": flood["rss_mib_growth_by_quarter"],
        "queues_max": probe.queues_max,
        "rpc_calls_flood": len(flood_only),
        "rpc_failures": probe.failures,
        "rpc_ms_p50_flood": round(statistics.median(flood_only), 2) if flood_only else None,
        "rpc_ms_p99_flood": round(probe.p99("flood"), 2),
        "rpc_ms_p99_flood_and_payments": round(probe.p99("flood and payments"), 2),
        "rpc_ms_p99_payments": round(probe.p99("payments"), 2),
        "rpc_ms_p99_idle": round(probe.p99("idle"), 2),
    }
    # Memory is judged at 1 GiB of junk: a smaller run is held to the same bound.
    figures["targets"] = {
        "throughput": figures["throughput_share"] >= THROUGHPUT_SHARE_MIN,
        "log_growth": figures["log_share_of_junk"] <= LOG_SHARE_MAX,
        "memory": figures["rss_mib_growth_peak"] <= RSS_MIB_GROWTH_MAX,
        "rpc_p99": bool(flood_only) and figures["rpc_ms_p99_flood"] < RPC_MS_P99_MAX,
        "alive": bool(flood["alive"]) and not probe.failures,
    }
    return figures


def report(figures: dict[str, Any]) -> None:
    targets = figures["targets"]

    def verdict(name: str) -> str:
        return "met" if targets[name] else "MISSED"

    print(
        f"throughput: {figures['payments_per_s_unloaded']:,}/s unloaded,"
        f" {figures['payments_per_s_flood']:,}/s under flood"
        f" ({figures['throughput_share']:.0%}; target >= 70%: {verdict('throughput')})"
    )
    print(
        f"junk: {figures['junk_mib']} MiB at {figures['junk_mib_per_s']} MiB/s,"
        f" {figures['junk_envelopes']:,} envelopes; the attacker took"
        f" {figures['attacker_cpu_share']:.0%} of a core"
    )
    print(
        f"log: {figures['log_bytes_per_junk_mib']:,} bytes of records per MiB of junk"
        f" ({figures['log_share_of_junk']:.3%}; target <= 1%: {verdict('log_growth')});"
        f" {figures['log_disk_bytes_added']:,} bytes added on disk"
    )
    print(
        f"memory: {figures['rss_mib_before']} MiB before, +{figures['rss_mib_growth_peak']} MiB"
        f" at the peak, +{figures['rss_mib_growth_after']} MiB after; peak by quarter of"
        f" the flood {figures['rss_mib_growth_by_quarter']}"
        f" (target <= {RSS_MIB_GROWTH_MAX} MiB: {verdict('memory')})"
    )
    print(
        f"rpc during the flood: {figures['rpc_calls_flood']} calls,"
        f" p50 {figures['rpc_ms_p50_flood']} ms, p99 {figures['rpc_ms_p99_flood']} ms"
        f" (target < {RPC_MS_P99_MAX:.0f} ms: {verdict('rpc_p99')}); p99 with payments too"
        f" {figures['rpc_ms_p99_flood_and_payments']} ms, with payments alone"
        f" {figures['rpc_ms_p99_payments']} ms, idle {figures['rpc_ms_p99_idle']} ms;"
        f" {figures['rpc_failures']} calls failed"
    )
    print(f"Bob up, answering and paid after the flood: {verdict('alive')}")


def measure(net: Net, probe: Probe, arguments: argparse.Namespace, consensus_app: str) -> Any:
    """Unloaded rounds before and after the flood (the machine's load drifts), the flood."""
    alice, bob, channel = net.alice, net.bob, net.channel
    payment_round(alice, bob, channel, arguments.payments)  # warm-up
    time.sleep(1.0)
    probe.phase = "payments"
    unloaded = rounds(alice, bob, channel, arguments.payments, arguments.rounds)
    probe.phase = "idle"
    time.sleep(1.0)
    flood = flood_figures(net, probe, arguments, consensus_app)
    probe.phase = "payments"
    unloaded += rounds(alice, bob, channel, arguments.payments, arguments.rounds)
    probe.phase = "idle"
    flood["alive"] = bob.process.poll() is None
    return unloaded, flood


def run(directory: Path, arguments: argparse.Namespace) -> dict[str, Any]:
    devnet_up(directory / "chain", nodes=2)
    consensus_app = read_devnet(directory / "chain").consensus_app
    nodes: list[ScriptNode] = []
    try:
        nodes = start_path(
            directory,
            directory / "chain",
            ("Bob", "Alice"),
            verbose=arguments.verbose,
            profile=arguments.profile,
        )
        bob, alice = nodes
        net = Net(alice, bob, open_channel(alice, bob))
        with Probe(bob) as probe:
            unloaded, flood = measure(net, probe, arguments, consensus_app)
    finally:
        for node in nodes:
            node.stop()
        devnet_down(directory / "chain")
    return summarise(unloaded, flood, probe, bob)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junk-mib", type=float, default=1024.0, help="junk to flood, MiB")
    parser.add_argument("--payments", type=int, default=5_000, help="payments per round")
    parser.add_argument("--rounds", type=int, default=2, help="unloaded rounds, before and after")
    parser.add_argument("--rpc-s", type=float, default=5.0, help="flood with RPC calls only, s")
    parser.add_argument("--flood-rounds", type=int, default=4, help="payment rounds in a flood")
    parser.add_argument("--junk", default="mixed", help="kind (node.testing.Junk values)")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--profile", action="store_true", help="DIR/bob.prof, DIR/alice.prof")
    parser.add_argument("--verbose", action="store_true", help="nodes log every step")
    arguments = parser.parse_args()
    scratch = arguments.dir is None
    directory = arguments.dir or Path(tempfile.mkdtemp(prefix="scnode-flood-"))
    try:
        figures = run(directory, arguments)
    finally:
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)
    report(figures)
    print(json.dumps({"benchmark": "flood", "junk": arguments.junk, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
