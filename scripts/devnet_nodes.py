"""Start-up shared by the demo and the benchmarks: ``scnode run`` processes on a devnet.

A script calls ``start_node`` per node (each in its own OS process, joined over
libp2p on 127.0.0.1 by the multiaddrs it is given), talks to it through
``ScriptNode.call`` and stops it with ``ScriptNode.stop``.
"""

from __future__ import annotations

import os
import pstats
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.home import NodeHome
from node.rpc import RpcSyncClient, load_rpc_token
from node.testing import SpawnError, node_command, spawn_node

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
PROFILE_LINES = 25  # functions shown per profile
_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass
class ScriptNode:
    """One running ``scnode run`` and what it printed when it came up."""

    name: str
    home: Path
    process: subprocess.Popen[str]
    address: str
    peer_id: str
    multiaddr: str
    rpc_url: str
    _client: RpcSyncClient | None = field(default=None, repr=False)
    metrics_url: str | None = None  # with ``--metrics`` among its options

    @property
    def token(self) -> str:
        """The node's RPC token."""
        return load_rpc_token(NodeHome(self.home))

    def call(self, method: str, **params: Any) -> Any:
        """One JSON-RPC call."""
        if self._client is None:
            self._client = RpcSyncClient(self.rpc_url, self.token)
        return self._client.call(method, **params)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process so far (from /proc/PID/stat)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_S

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_node(
    name: str,
    home: Path,
    devnet: Path,
    peers: list[str],
    *,
    verbose: bool = True,
    profile: Path | None = None,
    options: tuple[str, ...] = (),
) -> ScriptNode:
    """``scnode run`` in its own process; returns once it printed its RPC URL.

    Its standard error goes to ``HOME/node.log.txt``; with ``profile`` it runs under
    cProfile, which writes there when the node stops.

    Raises:
        SpawnError: it exited or did not print its RPC URL in time.
    """
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    command = node_command(
        home, devnet=devnet, peers=peers, verbose=verbose, python_options=profiler, options=options
    )
    (home / "node.log.txt").unlink(missing_ok=True)
    started = spawn_node(command, home / "node.log.txt", timeout_s=START_TIMEOUT_S)
    return ScriptNode(
        name,
        home,
        started.process,
        started.address,
        started.peer_id,
        started.multiaddr,
        started.rpc_url,
        metrics_url=started.lines.get("metrics on"),
    )


def start_path(
    directory: Path,
    devnet: Path,
    names: tuple[str, ...],
    *,
    verbose: bool = True,
    profile: bool = False,
    options: tuple[str, ...] = (),
) -> list[ScriptNode]:
    """Start a node per name (home ``DIR/<name>``, devnet account of its index).

    The first node starts alone; the others dial it by multiaddr. With ``profile``
    each runs under cProfile, writing ``DIR/<name>.prof`` when it stops; ``options``
    go to each ``scnode run``.
    """
    from node.chain import devnet_node_key

    nodes: list[ScriptNode] = []
    for index, name in enumerate(names):
        home = directory / name.lower()
        NodeHome(home).initialise(node_key=devnet_node_key(index))
    for name in names:
        peers = [nodes[0].multiaddr] if nodes else []
        home = directory / name.lower()
        output = directory / f"{name.lower()}.prof" if profile else None
        try:
            nodes.append(
                start_node(
                    name, home, devnet, peers, verbose=verbose, profile=output, options=options
                )
            )
        except SpawnError:
            for node in nodes:
                node.stop()
            raise
    return nodes


def objective_status(node: ScriptNode, objective_id: str) -> dict[str, Any]:
    """The objective's JSON; status UNKNOWN while the peer's message is on its way.

    Raises:
        RuntimeError: the objective failed.
    """
    try:
        info: dict[str, Any] = node.call("get_objective", objective_id=objective_id)
    except Exception as error:  # the node may not know the objective yet
        if "no objective" not in str(error):
            raise
        return {"status": "UNKNOWN", "waiting_for": "the proposal"}
    if info["status"] == "FAILED":
        raise RuntimeError(f"{node.name}: {objective_id} failed: {info['failure']}")
    return info


def wait_done(
    nodes: list[ScriptNode],
    objective_id: str,
    *,
    timeout_s: float,
    poll_s: float = 0.002,
    waiting: Callable[[ScriptNode, dict[str, Any]], None] | None = None,
) -> float:
    """Poll until the objective is done on every node, in turn; returns the seconds.

    ``waiting(node, info)`` is told each pause point seen on the way.

    Raises:
        RuntimeError: it failed on a node, or is not done in time.
    """
    start = time.perf_counter()
    for node in nodes:
        while (info := objective_status(node, objective_id))["status"] != "DONE":
            if time.perf_counter() - start > timeout_s:
                raise RuntimeError(f"{objective_id} not done within {timeout_s} s")
            if waiting is not None:
                waiting(node, info)
            time.sleep(poll_s)
    return time.perf_counter() - start


def wait_until(
    what: str,
    probe: Callable[[], bool],
    *,
    timeout_s: float,
    poll_s: float = 0.002,
) -> float:
    """Poll ``probe`` until true; returns the seconds it took.

    Raises:
        RuntimeError: still false after ``timeout_s``.
    """
    start = time.perf_counter()
    while not probe():
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"{what}: not done within {timeout_s} s")
        time.sleep(poll_s)
    return time.perf_counter() - start


def print_profiles(directory: Path, names: tuple[str, ...]) -> None:
    for name in names:
        path = directory / f"{name.lower()}.prof"
        if not path.exists():
            print(f"{name}: no profile written")
            continue
        print(f"---- {name}: top functions by own time")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(PROFILE_LINES)
