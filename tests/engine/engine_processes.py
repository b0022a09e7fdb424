"""Nodes in separate OS processes (``scnode run``) on a devnet, for end-to-end tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from node.chain import ChainClient, devnet_node_key
from node.home import NodeHome
from node.rpc import RpcSyncClient, load_rpc_token
from node.testing import SpawnError, node_command, spawn_node

PROJECT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
BATCH_TIMEOUT_MS = 60_000
_T = TypeVar("_T")


def cli(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m node.cli ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@dataclass
class NodeProcess:
    """A running ``scnode run``."""

    name: str
    home: Path
    process: subprocess.Popen[str]
    address: str
    multiaddr: str
    rpc_url: str
    stderr_path: Path

    @property
    def port(self) -> int:
        return int(self.multiaddr.split("/tcp/")[1].split("/")[0])

    def rpc(self) -> RpcSyncClient:
        return RpcSyncClient(self.rpc_url, load_rpc_token(NodeHome(self.home)))

    def call(self, method: str, **params: Any) -> Any:
        return self.rpc().call(method, **params)

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up anything."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._close_pipe()

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=15)
        self._close_pipe()
        return code

    def _close_pipe(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()

    def errors(self) -> str:
        return self.stderr_path.read_text()

    def batch(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[Any]:
        """One JSON-RPC batch; each call's result, or the RpcError it got, in order."""
        client = RpcSyncClient(
            self.rpc_url, load_rpc_token(NodeHome(self.home)), timeout_ms=BATCH_TIMEOUT_MS
        )
        return client.call_batch(calls)


def init_home(root: Path, name: str, index: int) -> Path:
    home = root / name
    NodeHome(home).initialise(node_key=devnet_node_key(index))
    return home


def start_node(
    name: str,
    home: Path,
    devnet: Path,
    *,
    peers: tuple[str, ...] = (),
    port: int = 0,
    options: tuple[str, ...] = (),
) -> NodeProcess:
    """Start a node (``options``: more ``scnode run`` options) and wait for the lines
    that say it is up."""
    stderr_path = home / f"{name}.stderr"
    command = node_command(
        home, devnet=devnet, peers=peers, listen_port=port, verbose=True, options=options
    )
    try:
        spawned = spawn_node(command, stderr_path, timeout_s=START_TIMEOUT_S)
    except SpawnError:
        raise AssertionError(f"{name} did not start: {stderr_path.read_text()[-3000:]}") from None
    return NodeProcess(
        name,
        home,
        spawned.process,
        spawned.address,
        spawned.multiaddr,
        spawned.rpc_url,
        stderr_path,
    )


def wait_for(what: str, probe: Callable[[], _T | None], timeout_s: float = 60.0) -> _T:
    """Poll ``probe`` until it returns something other than None."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def objective_status(node: NodeProcess, objective_id: str) -> dict[str, Any] | None:
    """The objective's JSON, or None while the node does not know it."""
    try:
        return dict(node.call("get_objective", objective_id=objective_id))
    except Exception as error:  # the node may not know it yet, or be restarting
        if "no objective" in str(error) or "Connection refused" in str(error):
            return None
        raise


def wait_done(node: NodeProcess, objective_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        info = objective_status(node, objective_id)
        if info is not None and info["status"] == "FAILED":
            raise AssertionError(f"{node.name}: {objective_id} failed: {info['failure']}")
        return info if info is not None and info["status"] == "DONE" else None

    return wait_for(f"{node.name} to finish {objective_id}", probe, timeout_s)


def deposited_events(client: ChainClient, channel: bytes) -> int:
    """How many Deposited events the adjudicator emitted for ``channel``."""
    adjudicator = client.require_adjudicator()
    logs = adjudicator.events.Deposited().get_logs(from_block=0)
    return sum(1 for log in logs if bytes(log["args"]["destination"]) == channel)


def read_json(text: str) -> Any:
    return json.loads(text)
