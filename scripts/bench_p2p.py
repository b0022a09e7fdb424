"""Benchmark of p2p messaging: two node processes, a one-way stream with acks.

Usage:
    python scripts/bench_p2p.py [--count 100000] [--size 200] [--probes 300]

The sender logs COUNT messages of SIZE bytes as SentMessage records (256 per
append, as the engine logs a step's messages) and hands them to the messenger;
the receiver logs each delivery as ReceivedMessages (one append) and only then
acknowledges. Throughput counts
acknowledged messages. Then PROBES messages go one at a time (low load) for the
round-trip time from send() to the ack. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.home import NodeHome  # noqa: E402


def _start(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.testing.p2p_runner",
            "--home",
            str(home),
            "--no-gossip",
            "--summary",
            "--resend-ms",
            "30000",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("BENCH_P2P_STDERR") else subprocess.DEVNULL,
        text=True,
    )


def _wait_for(stream: IO[str] | None, event: str) -> dict[str, Any]:
    assert stream is not None
    for line in stream:
        message: dict[str, Any] = json.loads(line)
        if message["event"] == event:
            return message
    raise SystemExit(f"node exited before printing {event!r}")


def _drain(stream: IO[str] | None) -> None:
    assert stream is not None
    for _ in stream:
        pass


def _command(process: subprocess.Popen[str], command: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(command) + "\n")
    process.stdin.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--probes", type=int, default=300)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-p2p-") as scratch:
        homes = [Path(scratch) / name for name in ("sender", "receiver")]
        for home in homes:
            NodeHome(home).initialise(node_key=secrets.token_bytes(31).rjust(32, b"\x01"))
        sender, receiver = (_start(home) for home in homes)
        try:
            ready = _wait_for(receiver.stdout, "ready")
            _wait_for(sender.stdout, "ready")
            # The receiver reports deliveries on stdout: keep its pipe drained.
            threading.Thread(target=_drain, args=(receiver.stdout,), daemon=True).start()
            _command(sender, {"cmd": "connect", "multiaddr": ready["multiaddrs"][0]})
            _wait_for(sender.stdout, "connected")
            _command(
                sender,
                {
                    "cmd": "bench",
                    "to": ready["address"],
                    "count": arguments.count,
                    "size": arguments.size,
                    "probes": arguments.probes,
                },
            )
            result = _wait_for(sender.stdout, "bench")
        finally:
            for process in (sender, receiver):
                _command(process, {"cmd": "quit"})
            for process in (sender, receiver):
                process.wait(timeout=30)
    print(f"messages:         {result['messages']} x {arguments.size} B, acked, logged both ends")
    print(f"elapsed:          {result['seconds']:.2f} s")
    print(f"throughput:       {result['messages_per_s']:,.0f} acknowledged messages/s")
    print(f"round trip p50:   {result['rtt_ms_p50']:.2f} ms (one message at a time)")
    print(f"round trip p99:   {result['rtt_ms_p99']:.2f} ms")
    summary = {
        "messages_per_s": round(result["messages_per_s"]),
        "rtt_ms_p50": round(result["rtt_ms_p50"], 3),
        "rtt_ms_p99": round(result["rtt_ms_p99"], 3),
        "messages": result["messages"],
        "size_bytes": arguments.size,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
