"""Nodes in separate OS processes on 127.0.0.1 (node/testing/p2p_runner.py).

Messages both ways; kill -9 of the receiver and of the sender in mid-stream,
then a restart, with every message delivered exactly once according to the
logs; and a node that finds a third node by address through gossip alone.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.home import NodeHome
from node.log import EventLog
from tests.p2p.conftest import ALICE, BOB, IRENE

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
# Messages per second in the kill tests: 6000 take about 1.5 s, so a kill that
# follows the first delivery lands mid-stream even on a busy machine.
RATE = 4000
Event = dict[str, Any]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NodeProcess:
    """One runner process; its stdout events are collected by a thread."""

    def __init__(self, home: NodeHome, port: int, *extra: str) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.stderr_path = home.root / f"stderr-{time.monotonic_ns()}.log"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in quit/cleanup
        self.seen: list[Event] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.testing.p2p_runner",
                "--home",
                str(home.root),
                "--port",
                str(port),
                "--resend-ms",
                "1000",
                *extra,
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait_for(lambda event: event["event"] == "ready", timeout_s=30)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, predicate: Callable[[Event], bool], timeout_s: float = 60) -> Event:
        """The first event (seen before or arriving) that matches."""
        for event in self.seen:
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no matching event within {timeout_s} s: {self.seen[-5:]}\n"
                    + self.stderr_path.read_text()[-4000:]
                )
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if predicate(event):
                return event

    def command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def delivered_ids(self, sender: str) -> list[int]:
        self.drain()
        return [
            message_id
            for event in self.seen
            if event["event"] == "delivered" and event["sender"] == sender
            for message_id in event["ids"]
        ]

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def quit(self) -> None:
        if self.process.poll() is None:
            self.command(cmd="quit")
            self.process.wait(timeout=20)
        self.close_files()

    def close_files(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout, self._stderr):
            if pipe is not None:
                pipe.close()


def _ids(home: NodeHome, case: str, field: str = "message_ids") -> list[int]:
    """Message ids of every record of one kind in a node's log, in log order."""
    ids: list[int] = []
    with EventLog.open(home.log_path) as log:
        for record in log.read():
            if record.WhichOneof("payload") != case:
                continue
            body = getattr(record, case)
            if case == "sent_message":
                ids.append(body.envelope.id)
            else:
                ids.extend(getattr(body, field))
    return ids


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for node in started:
        if node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)
        node.close_files()


def test_messages_flow_both_ways_between_processes(
    homes: dict[str, NodeHome], processes: list[NodeProcess]
) -> None:
    alice = NodeProcess(homes["alice"], 0, "--no-gossip")
    bob = NodeProcess(homes["bob"], 0, "--no-gossip")
    processes.extend([alice, bob])
    assert alice.ready["peer_id"] == ALICE.peer_id
    assert bob.ready["address"] == BOB.address
    alice.command(cmd="connect", multiaddr=bob.ready["multiaddrs"][0])
    alice.wait_for(lambda event: event["event"] == "connected")
    alice.command(cmd="send", to=BOB.address, total=300, size=200)
    bob.command(cmd="send", to=ALICE.address, total=200, size=100)
    alice.wait_for(lambda event: event["event"] == "all_acked")
    bob.wait_for(lambda event: event["event"] == "all_acked")
    bob.wait_for(lambda _: len(bob.delivered_ids(ALICE.address)) == 300)
    alice.wait_for(lambda _: len(alice.delivered_ids(BOB.address)) == 200)
    assert bob.delivered_ids(ALICE.address) == list(range(1, 301))
    assert alice.delivered_ids(BOB.address) == list(range(1, 201))
    assert all(e["labels_ok"] for node in (alice, bob) for e in node.seen if "labels_ok" in e)
    alice.quit()
    bob.quit()
    assert _ids(homes["bob"], "received_messages") == list(range(1, 301))
    assert _ids(homes["alice"], "sent_message") == list(range(1, 301))


def _exactly_once(ids: list[int], total: int) -> None:
    counts = Counter(ids)
    assert sorted(counts) == list(range(1, total + 1))
    assert max(counts.values()) == 1


def test_receiver_killed_mid_stream_gets_every_message_once(
    homes: dict[str, NodeHome], processes: list[NodeProcess]
) -> None:
    total = 6000
    bob_port = _free_port()
    alice = NodeProcess(homes["alice"], 0, "--no-gossip")
    bob = NodeProcess(homes["bob"], bob_port, "--no-gossip")
    processes.extend([alice, bob])
    alice.command(cmd="connect", multiaddr=bob.ready["multiaddrs"][0])
    alice.wait_for(lambda event: event["event"] == "connected")
    alice.command(cmd="send", to=BOB.address, total=total, size=200, rate=RATE)
    bob.wait_for(lambda _: len(bob.delivered_ids(ALICE.address)) > 0)
    bob.kill()
    before = bob.delivered_ids(ALICE.address)
    assert len(before) < total, "the kill must land mid-stream"
    bob = NodeProcess(homes["bob"], bob_port, "--no-gossip")
    processes.append(bob)
    alice.wait_for(lambda event: event["event"] == "all_acked", timeout_s=120)
    alice.quit()
    bob.quit()
    after = bob.delivered_ids(ALICE.address)
    assert not set(before) & set(after), "a message reached the application twice"
    _exactly_once(_ids(homes["bob"], "received_messages"), total)
    _exactly_once(_ids(homes["alice"], "sent_message"), total)


def test_sender_killed_mid_stream_delivers_every_message_once(
    homes: dict[str, NodeHome], processes: list[NodeProcess]
) -> None:
    total = 6000
    alice_port = _free_port()
    alice = NodeProcess(homes["alice"], alice_port, "--no-gossip")
    bob = NodeProcess(homes["bob"], 0, "--no-gossip")
    processes.extend([alice, bob])
    alice.command(cmd="connect", multiaddr=bob.ready["multiaddrs"][0])
    alice.wait_for(lambda event: event["event"] == "connected")
    alice.command(cmd="send", to=BOB.address, total=total, size=200, rate=RATE)
    bob.wait_for(lambda _: len(bob.delivered_ids(ALICE.address)) > 0)
    alice.kill()
    assert len(bob.delivered_ids(ALICE.address)) < total, "the kill must land mid-stream"
    # The restarted sender redials Bob from its peer store and re-sends its
    # logged, unacknowledged messages; "send" only adds the ones never logged.
    alice = NodeProcess(homes["alice"], alice_port, "--no-gossip")
    processes.append(alice)
    alice.command(cmd="send", to=BOB.address, total=total, size=200, rate=RATE)
    alice.wait_for(lambda event: event["event"] == "all_acked", timeout_s=120)
    bob.wait_for(lambda _: len(bob.delivered_ids(ALICE.address)) == total)
    alice.quit()
    bob.quit()
    delivered = bob.delivered_ids(ALICE.address)
    _exactly_once(delivered, total)
    assert all(e["labels_ok"] for e in bob.seen if e["event"] == "delivered")
    _exactly_once(_ids(homes["bob"], "received_messages"), total)
    _exactly_once(_ids(homes["alice"], "sent_message"), total)


def test_a_node_reaches_a_third_node_found_through_gossip(
    homes: dict[str, NodeHome], processes: list[NodeProcess]
) -> None:
    alice = NodeProcess(homes["alice"], 0, "--announce-ms", "300")
    bob = NodeProcess(homes["bob"], 0, "--announce-ms", "300")
    irene = NodeProcess(homes["irene"], 0, "--announce-ms", "300")
    processes.extend([alice, bob, irene])
    alice.command(cmd="connect", multiaddr=bob.ready["multiaddrs"][0])
    irene.command(cmd="connect", multiaddr=bob.ready["multiaddrs"][0])
    learned = alice.wait_for(
        lambda event: event["event"] == "directory" and event["address"] == IRENE.address
    )
    assert learned["multiaddrs"] == irene.ready["multiaddrs"]
    # Alice never got Irene's multiaddr from anyone but the gossip: send by address.
    alice.command(cmd="send", to=IRENE.address, total=5, size=64)
    alice.wait_for(lambda event: event["event"] == "all_acked")
    irene.wait_for(lambda _: irene.delivered_ids(ALICE.address) == [1, 2, 3, 4, 5])
    for node in (alice, bob, irene):
        node.quit()
    peers = json.loads((homes["alice"].p2p_path / "peers.json").read_text())["peers"]
    assert IRENE.peer_id in {peer["peer_id"] for peer in peers}
    assert os.path.exists(homes["irene"].p2p_path / "peers.json")
