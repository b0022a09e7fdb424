"""A stand-alone p2p node process for integration tests and the benchmark.

    python -m node.testing.p2p_runner --home DIR [--port N] [--announce-ms MS]

It prints one JSON object per line on stdout (events) and reads JSON commands
from stdin, one per line:

* ``{"cmd": "connect", "multiaddr": M}``: dial a peer and remember it.
* ``{"cmd": "send", "to": ADDRESS, "total": N, "size": B}``: make sure messages
  1..N to ADDRESS exist (those already logged are not sent again), each with one
  payload whose objective id is ``m<id>`` padded to B bytes; prints
  ``all_acked`` once the peer acknowledged them all. An optional ``"rate"``
  paces the sending (messages per second).
* ``{"cmd": "bench", "to": ADDRESS, "count": N, "size": B, "probes": P}``: a
  throughput run then P one-at-a-time round trips; prints ``bench``.
* ``{"cmd": "quit"}``.

Events: ``ready`` (address, peer id, multiaddrs), ``delivered`` (sender, ids),
``directory`` (an address learned from gossip), ``all_acked``, ``bench``.

The runner owns its log as the engine does (``MessageOwner``): it logs each burst
of messages it sends (one append) before handing them to the messenger, and what
a peer sent (one append per delivery) before acknowledging it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from node.home import NodeHome
from node.log import EventLog
from node.p2p import Delivery, DirectoryEntry, MessengerOptions, P2PConfig, P2PNode
from node.proto import wire_pb2
from node.testing._message_owner import MessageOwner

_PACING_CHUNK = 100
_BENCH_BURST = 256  # messages logged per append while benchmarking


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _payload(message_id: int, size: int) -> wire_pb2.Payload:
    label = f"m{message_id}"
    return wire_pb2.Payload(
        objective_id=label.ljust(max(size, len(label)), "."), ack=wire_pb2.Ack()
    )


class _Runner:
    def __init__(self, node: P2PNode, log: EventLog, *, summary: bool) -> None:
        self.node = node
        self.summary = summary
        self.owner = MessageOwner(node, log, self.on_delivery)

    def on_delivery(self, delivery: Delivery) -> None:
        ids = [envelope.id for envelope in delivery.envelopes]
        labels_ok = all(
            envelope.payloads[0].objective_id.rstrip(".") == f"m{envelope.id}"
            for envelope in delivery.envelopes
        )
        if self.summary:
            _emit("delivered", sender=delivery.sender, count=len(ids), labels_ok=labels_ok)
        else:
            _emit("delivered", sender=delivery.sender, ids=ids, labels_ok=labels_ok)

    async def send_burst(self, peer: str, count: int, size: int) -> list[int]:
        """``count`` messages, logged in one append, then handed to the messenger."""
        first = self.owner.next_id(peer)
        messages = [[_payload(first + offset, size)] for offset in range(count)]
        return await self.owner.send(peer, messages)

    async def send(self, command: dict[str, Any]) -> None:
        peer = command["to"]
        size = int(command.get("size", 32))
        total = int(command["total"])
        # Optional pacing, messages per second, so that a stream lasts long enough
        # for a test to interrupt it.
        pause_s = _PACING_CHUNK / float(command["rate"]) if "rate" in command else 0.0
        while (next_id := self.owner.next_id(peer)) <= total:
            await self.send_burst(peer, min(_PACING_CHUNK, total - next_id + 1), size)
            await trio.sleep(pause_s)
        await self.owner.wait_all_acked(peer)
        _emit("all_acked", to=command["to"], total=self.owner.next_id(peer) - 1)

    async def bench(self, command: dict[str, Any]) -> None:
        peer = command["to"]
        size = int(command.get("size", 200))
        count = int(command["count"])
        started = time.perf_counter()
        sent = 0
        while sent < count:
            burst = min(_BENCH_BURST, count - sent)
            await self.send_burst(peer, burst, size)
            sent += burst
        await self.owner.wait_all_acked(peer)
        elapsed = time.perf_counter() - started
        round_trips: list[float] = []
        for _ in range(int(command.get("probes", 200))):
            sent_at = time.perf_counter()
            (message_id,) = await self.send_burst(peer, 1, size)
            await self.owner.wait_all_acked(peer)
            round_trips.append((self.owner.ack_times[message_id] - sent_at) * 1000)
        quantiles = statistics.quantiles(round_trips, n=100)
        _emit(
            "bench",
            messages=count,
            seconds=elapsed,
            messages_per_s=count / elapsed,
            rtt_ms_p50=statistics.median(round_trips),
            rtt_ms_p99=quantiles[98],
        )

    async def command_loop(self, cancel: trio.CancelScope) -> None:
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        buffer = b""
        async with stdin:
            while True:
                while b"\n" not in buffer:
                    chunk = await stdin.receive_some(65536)
                    if not chunk:
                        cancel.cancel()
                        return
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\n")
                if not await self.command(json.loads(line)):
                    cancel.cancel()
                    return

    async def command(self, command: dict[str, Any]) -> bool:
        """Run one command; False means quit."""
        name = str(command["cmd"])
        if name == "connect":
            address = await self.node.connect(command["multiaddr"])
            _emit("connected", address=address)
        elif name == "send":
            await self.send(command)
        elif name == "bench":
            await self.bench(command)
        return name != "quit"


async def _main(arguments: argparse.Namespace) -> None:
    home = NodeHome(Path(arguments.home))
    config = P2PConfig(
        port=arguments.port,
        announce_interval_ms=arguments.announce_ms,
        gossip=not arguments.no_gossip,
        messenger=MessengerOptions(resend_timeout_ms=arguments.resend_ms),
    )
    with EventLog.open(home.log_path) as log:

        def on_entry(entry: DirectoryEntry) -> None:
            _emit("directory", address=entry.address, multiaddrs=list(entry.multiaddrs))

        node = P2PNode(private_key=home.node_key(), state_dir=home.p2p_path, config=config)
        if node.gossip is not None:
            node.gossip.add_entry_listener(on_entry)
        runner = _Runner(node, log, summary=arguments.summary)
        runner.owner.restore()
        async with trio.open_nursery() as nursery:
            multiaddrs = await nursery.start(node.run)
            _emit("ready", address=node.address, peer_id=node.peer_id, multiaddrs=multiaddrs)
            nursery.start_soon(runner.owner.run)
            nursery.start_soon(runner.command_loop, nursery.cancel_scope)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments and run until ``quit`` or end of input."""
    parser = argparse.ArgumentParser(prog="python -m node.testing.p2p_runner")
    parser.add_argument("--home", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--announce-ms", type=int, default=500)
    parser.add_argument("--resend-ms", type=int, default=2_000)
    parser.add_argument("--no-gossip", action="store_true")
    parser.add_argument("--summary", action="store_true", help="print counts, not ids")
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    trio.run(_main, arguments)
    return 0


if __name__ == "__main__":
    sys.exit(main())
