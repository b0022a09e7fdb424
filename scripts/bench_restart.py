"""Benchmark: restart time of a node against the length of its event log.

Usage: python scripts/bench_restart.py [--sizes 0,10000,100000,1000000] [--dir DIR] [--runs R]

Starts a devnet and two nodes, Alice and Bob, as ``scnode run`` processes; opens a
ledger channel between them and a payment channel funded by it, and pays a few
times. Then Alice is stopped and her log is grown, record by record as a payer's log
grows (a signed voucher logged as sent, the message that carries it, and an
acknowledgement every 50 messages), to each size in turn. At each size the newest
snapshot stands just short of an interval before the end (Alice starts once, then the
log grows again): the worst tail a node killed at that moment folds. Then Alice is
started again R times and the time from process start to her first answered JSON-RPC
call is measured (median); her ``get_node_info`` says how many records she replayed.

Size 0 is a node started on an empty log. The last line is JSON:
``{"restart_ms": {"0": ..., "10000": ...}, "tail_records": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from devnet_nodes import ScriptNode, start_path, wait_done, wait_until

from node.chain import devnet_down, devnet_up
from node.core import Signer, constants, voucher_to_proto
from node.home import NodeHome
from node.log import EventLog
from node.proto import log_pb2, wire_pb2
from node.rpc import RpcConnectionError, RpcError, RpcSyncClient, load_rpc_token
from node.testing import node_command

ETH = 10**18
TIMEOUT_S = 120.0
ACK_EVERY = 50
APPEND_RECORDS = 9_000
POLL_S = 0.002
# Records after the newest snapshot: one short of the interval between snapshots.
TAIL_RECORDS = constants.engine_snapshot_interval_records - 1


def open_channel(alice: ScriptNode, bob: ScriptNode) -> str:
    """A ledger Alice–Bob and a payment channel over it; returns the channel id."""
    created = alice.call("create_ledger_channel", counterparty=bob.address, amount=str(10 * ETH))
    wait_done([alice, bob], created["objective_id"], timeout_s=TIMEOUT_S)
    opened = alice.call(
        "create_payment_channel", counterparty=bob.address, amount=str(ETH), intermediaries=[]
    )
    wait_done([alice, bob], opened["objective_id"], timeout_s=TIMEOUT_S)
    channel: str = opened["channel_id"]
    for _ in range(3):
        alice.call("pay", channel_id=channel, amount="1")
    wait_until(
        "Bob holds the payments",
        lambda: int(bob.call("get_payment_channel", channel_id=channel)["received"]) == 3,
        timeout_s=TIMEOUT_S,
    )
    return channel


def next_message_id(log: EventLog, peer: bytes) -> int:
    """The id Alice gives her next message to ``peer``."""
    last = 0
    for record in log.read():
        if record.WhichOneof("payload") == "sent_message" and record.sent_message.peer == peer:
            last = max(last, record.sent_message.envelope.id)
    return last + 1


class PayerLog:
    """Grows a payer's log the way paying grows it."""

    def __init__(self, home: Path, channel: bytes, payee: bytes, signer: Signer) -> None:
        self.log = EventLog.open(NodeHome(home).log_path)
        self.channel = channel
        self.payee = payee
        self.signer = signer
        self.me = bytes.fromhex(signer.address[2:])
        self.message_id = next_message_id(self.log, payee)
        self.paid = self._paid()

    def _paid(self) -> int:
        paid = 0
        for record in self.log.read():
            if record.WhichOneof("payload") == "accepted_voucher":
                voucher = record.accepted_voucher
                if voucher.sent and voucher.voucher.channel_id == self.channel:
                    paid = max(paid, int.from_bytes(voucher.voucher.amount, "big"))
        return paid

    def grow_to(self, size: int) -> None:
        while self.log.last_seq < size:
            room = min(APPEND_RECORDS, size - self.log.last_seq)
            records: list[log_pb2.LogRecord] = []
            while len(records) + 3 <= room:
                records.extend(self._payment())
            while len(records) < room:
                records.append(self._ack(self.message_id - 1))
            self.log.append_batch(records)

    def _payment(self) -> list[log_pb2.LogRecord]:
        self.paid += 1
        voucher = self.signer.voucher(self.channel, self.paid)
        payload = wire_pb2.Payload(objective_id="VirtualFunding-0x" + self.channel.hex())
        payload.voucher.CopyFrom(voucher_to_proto(voucher))
        accepted = log_pb2.LogRecord(time_ms=int(time.time() * 1000))
        accepted.accepted_voucher.voucher.CopyFrom(payload.voucher)
        accepted.accepted_voucher.sent = True
        envelope = wire_pb2.Envelope(
            id=self.message_id, sender=self.me, recipient=self.payee, payloads=[payload]
        )
        sent = log_pb2.LogRecord(time_ms=accepted.time_ms)
        sent.sent_message.peer = self.payee
        sent.sent_message.envelope.CopyFrom(envelope)
        records = [accepted, sent]
        if self.message_id % ACK_EVERY == 0:
            records.append(self._ack(self.message_id))
        self.message_id += 1
        return records

    def _ack(self, last_id: int) -> log_pb2.LogRecord:
        record = log_pb2.LogRecord(time_ms=int(time.time() * 1000))
        record.acknowledgement.peer = self.payee
        first = max(1, last_id - ACK_EVERY + 1)
        record.acknowledgement.message_ids.extend(range(first, last_id + 1))
        return record

    def close(self) -> None:
        self.log.close()


def first_answer_ms(home: Path, devnet: Path) -> tuple[float, Any]:
    """Start the node; ms from process start until it answers ``get_address``; then its
    replay report; then stop it."""
    rpc_file = home / "rpc.url"
    rpc_file.unlink(missing_ok=True)
    command = node_command(home, devnet=devnet, peers=[], verbose=False)
    with open(home / "node.log.txt", "a") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            client = None
            while client is None or not _answers(client):
                if process.poll() is not None:
                    raise RuntimeError(f"the node exited; see {home / 'node.log.txt'}")
                if client is None and rpc_file.exists():
                    client = RpcSyncClient(
                        rpc_file.read_text().strip(), load_rpc_token(NodeHome(home))
                    )
                time.sleep(POLL_S)
            elapsed_ms = (time.perf_counter() - started) * 1000
            report = client.call("get_node_info")["restart"]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    return elapsed_ms, report


def _answers(client: RpcSyncClient) -> bool:
    try:
        client.call("get_address")
    except (RpcConnectionError, RpcError):
        return False
    return True


def time_restart(home: Path, devnet: Path, runs: int) -> tuple[float, Any]:
    """Median ms from process start to the first answered call, and the replay report.

    Each run starts from the same copy of the log: a start that folds a long tail
    snapshots soon after, and the next run would see no tail.
    """
    log_path = NodeHome(home).log_path
    pristine = log_path.with_name("log.pristine")
    shutil.rmtree(pristine, ignore_errors=True)
    if log_path.exists():
        shutil.copytree(log_path, pristine)
    times = []
    report: Any = None
    for _ in range(runs):
        shutil.rmtree(log_path, ignore_errors=True)
        if pristine.exists():
            shutil.copytree(pristine, log_path)
        elapsed_ms, report = first_answer_ms(home, devnet)
        times.append(elapsed_ms)
    shutil.rmtree(pristine, ignore_errors=True)
    return statistics.median(times), report


def warm_up(home: Path, devnet: Path) -> None:
    """A start that folds what this script wrote behind the node's back, as a node folds
    what it writes while it runs: it snapshots its state (the records after a snapshot
    are the tail every later start folds)."""
    first_answer_ms(home, devnet)


def run(directory: Path, sizes: list[int], runs: int) -> dict[str, Any]:
    devnet_dir = directory / "devnet"
    devnet_up(devnet_dir, nodes=3)
    restart_ms: dict[str, float] = {}
    tails: dict[str, Any] = {}
    try:
        empty = directory / "empty"
        from node.chain import devnet_node_key

        NodeHome(empty).initialise(node_key=devnet_node_key(2))
        if 0 in sizes:
            restart_ms["0"], tails["0"] = time_restart(empty, devnet_dir, runs)
            print(f"empty log: {restart_ms['0']:.0f} ms", flush=True)
        alice, bob = start_path(directory, devnet_dir, ("Alice", "Bob"), verbose=False)
        try:
            channel = open_channel(alice, bob)
            payee = bytes.fromhex(bob.address[2:])
        finally:
            alice.stop()
        grower = PayerLog(
            alice.home, bytes.fromhex(channel[2:]), payee, Signer(NodeHome(alice.home).node_key())
        )
        try:
            for size in sorted(s for s in sizes if s > 0):
                started = time.perf_counter()
                # The worst tail: a snapshot was taken just over an interval ago.
                grower.grow_to(max(grower.log.last_seq, size - TAIL_RECORDS))
                grower.close()
                warm_up(alice.home, devnet_dir)
                grower.log = EventLog.open(NodeHome(alice.home).log_path)
                grower.grow_to(size)
                grower.close()
                print(f"log grown to {size:,} records in {time.perf_counter() - started:.1f} s")
                restart_ms[str(size)], tails[str(size)] = time_restart(alice.home, devnet_dir, runs)
                print(f"{size:,} records: {restart_ms[str(size)]:.0f} ms", flush=True)
                grower.log = EventLog.open(NodeHome(alice.home).log_path)
        finally:
            grower.close()
            bob.stop()
    finally:
        devnet_down(devnet_dir)
    return {
        "benchmark": "restart",
        "restart_ms": {k: round(v, 1) for k, v in restart_ms.items()},
        "tail_records": tails,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    directory = arguments.dir or Path(tempfile.mkdtemp(prefix="scnode-bench-restart-"))
    try:
        result = run(directory, sizes, arguments.runs)
    finally:
        if arguments.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
