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
from node.p2p import DirectoryEntry, MessengerOptions, P2PConfig, P2PNode, parse_address
from node.proto import wire_pb2

_PACING_CHUNK = 100


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _payload(message_id: int, size: int) -> wire_pb2.Payload:
    label = f"m{message_id}"
    return wire_pb2.Payload(
        objective_id=label.ljust(max(size, len(label)), "."), ack=wire_pb2.Ack()
    )


class _Runner:
    def __init__(self, node: P2PNode, *, summary: bool) -> None:
        self.node = node
        self.summary = summary
        self.acked: dict[bytes, trio.Event] = {}
        self.ack_times: dict[int, float] = {}

    def on_acknowledged(self, peer: bytes, message_ids: Sequence[int]) -> None:
        now = time.perf_counter()
        for message_id in message_ids:
            self.ack_times[message_id] = now
        if self.node.messenger.unacknowledged(peer) == 0 and peer in self.acked:
            self.acked.pop(peer).set()

    async def deliver_loop(self) -> None:
        async for delivery in self.node.deliveries:
            ids = [envelope.id for envelope in delivery.envelopes]
            labels_ok = all(
                envelope.payloads[0].objective_id.rstrip(".") == f"m{envelope.id}"
                for envelope in delivery.envelopes
            )
            if self.summary:
                _emit("delivered", sender=delivery.sender, count=len(ids), labels_ok=labels_ok)
            else:
                _emit("delivered", sender=delivery.sender, ids=ids, labels_ok=labels_ok)

    async def wait_all_acked(self, peer: bytes) -> None:
        if self.node.messenger.unacknowledged(peer) == 0:
            return
        event = self.acked.setdefault(peer, trio.Event())
        await event.wait()

    async def send(self, command: dict[str, Any]) -> None:
        peer = parse_address(command["to"])
        messenger = self.node.messenger
        size = int(command.get("size", 32))
        # Optional pacing, messages per second, so that a stream lasts long enough
        # for a test to interrupt it.
        pause_s = _PACING_CHUNK / float(command["rate"]) if "rate" in command else 0.0
        sent = 0
        while messenger.next_message_id(peer) <= int(command["total"]):
            await messenger.send(peer, [_payload(messenger.next_message_id(peer), size)])
            sent += 1
            if sent % _PACING_CHUNK == 0:
                await trio.sleep(pause_s)
            else:
                await trio.lowlevel.checkpoint()
        await self.wait_all_acked(peer)
        _emit("all_acked", to=command["to"], total=messenger.next_message_id(peer) - 1)

    async def bench(self, command: dict[str, Any]) -> None:
        peer = parse_address(command["to"])
        messenger = self.node.messenger
        size = int(command.get("size", 200))
        count = int(command["count"])
        started = time.perf_counter()
        for index in range(count):
            await messenger.send(peer, [_payload(messenger.next_message_id(peer), size)])
            if index % 256 == 0:
                await trio.lowlevel.checkpoint()
        await self.wait_all_acked(peer)
        elapsed = time.perf_counter() - started
        round_trips: list[float] = []
        for _ in range(int(command.get("probes", 200))):
            sent_at = time.perf_counter()
            message_id = await messenger.send(
                peer, [_payload(messenger.next_message_id(peer), size)]
            )
            await self.wait_all_acked(peer)
            round_trips.append((self.ack_times[message_id] - sent_at) * 1000)
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
        runner: _Runner | None = None

        def on_acknowledged(peer: bytes, message_ids: Sequence[int]) -> None:
            assert runner is not None
            runner.on_acknowledged(peer, message_ids)

        def on_entry(entry: DirectoryEntry) -> None:
            _emit("directory", address=entry.address, multiaddrs=list(entry.multiaddrs))

        node = P2PNode(
            private_key=home.node_key(),
            state_dir=home.p2p_path,
            log=log,
            config=config,
            on_acknowledged=on_acknowledged,
        )
        if node.gossip is not None:
            node.gossip.add_entry_listener(on_entry)
        runner = _Runner(node, summary=arguments.summary)
        async with trio.open_nursery() as nursery:
            multiaddrs = await nursery.start(node.run)
            _emit("ready", address=node.address, peer_id=node.peer_id, multiaddrs=multiaddrs)
            nursery.start_soon(runner.deliver_loop)
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
