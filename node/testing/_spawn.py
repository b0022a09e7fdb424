"""``scnode run`` in a child process, for scripts and tests that drive real nodes.

The child prints what it is once it is up (its address, peer id, multiaddr
and RPC URL, one per line); ``spawn_node`` returns when it has read them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node.core.errors import ScnodeError

_ROOT = Path(__file__).resolve().parents[2]
_UP_LINE = "JSON-RPC on"


class SpawnError(ScnodeError):
    """The child exited, or did not say it was up in time."""


@dataclass(frozen=True)
class SpawnedNode:
    """A child ``scnode run`` and what it printed when it came up.

    Attributes:
        process: the child; its stdout is a pipe the caller closes when done.
        address: the node's Ethereum address.
        peer_id: its libp2p peer id.
        multiaddr: its first listening multiaddr, with ``/p2p/PEER_ID``.
        rpc_url: its JSON-RPC URL.
        lines: everything it printed while coming up: the text before each line's last
            word, mapped to that word (``metrics on`` -> the metrics URL).
    """

    process: subprocess.Popen[str]
    address: str
    peer_id: str
    multiaddr: str
    rpc_url: str
    lines: dict[str, str] = field(default_factory=dict)


def node_command(
    home: Path,
    *,
    devnet: Path,
    peers: Sequence[str] = (),
    listen_port: int = 0,
    verbose: bool = False,
    python_options: Sequence[str] = (),
    options: Sequence[str] = (),
) -> list[str]:
    """The command line of a child node (pure); ``python_options`` go before ``-m``,
    ``options`` (more ``scnode run`` options) at the end."""
    command = [sys.executable, *python_options, "-m", "node.cli", "run"]
    command += ["--home", str(home), "--devnet", str(devnet)]
    command += ["--listen", f"/ip4/127.0.0.1/tcp/{listen_port}"]
    command += ["--verbose"] if verbose else []
    for peer in peers:
        command += ["--peer", peer]
    return [*command, *options]


def spawn_node(command: list[str], stderr: Path, *, timeout_s: float) -> SpawnedNode:
    """Start ``command`` (see ``node_command``), its standard error appended to ``stderr``.

    Raises:
        SpawnError: it exited or was not up within ``timeout_s``; it is killed.
    """
    with stderr.open("a") as errors:
        process = subprocess.Popen(
            command,
            cwd=_ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert process.stdout is not None
    lines: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while _UP_LINE not in lines:
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            process.wait()
            process.stdout.close()
            raise SpawnError(f"the node did not start; its errors: {stderr}")
        key, _, value = line.strip().rpartition(" ")
        lines[key] = value
    return SpawnedNode(
        process,
        lines["scnode node"],
        lines["peer id"],
        lines["listening on"],
        lines[_UP_LINE],
        lines,
    )
