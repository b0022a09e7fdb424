"""Starting and stopping a local anvil chain (devnet and integration tests).

anvil comes from npm (``@foundry-rs/anvil-linux-amd64``); ``npm ci`` puts it at
``node_modules/.bin/anvil``. ``SCNODE_ANVIL`` overrides the binary's path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from node.chain._artifacts import NODE_MODULES_DIR
from node.core import constants
from node.core.errors import ChainError

# Processes this interpreter started, kept so that they are waited for (no zombies,
# no "still running" warnings when the handle is collected).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
_LISTENING = re.compile(rb"Listening on 127\.0\.0\.1:(\d+)")
# The anvil dev accounts (mnemonic "test test ... junk"); #0 deploys contracts.
ANVIL_DEV_KEYS: tuple[str, ...] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


def anvil_binary() -> Path:
    """Path of the anvil executable.

    Raises:
        ChainError: anvil is not installed.
    """
    override = os.environ.get("SCNODE_ANVIL")
    candidates = [Path(override)] if override else []
    candidates.append(NODE_MODULES_DIR / ".bin" / "anvil")
    on_path = shutil.which("anvil")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ChainError("anvil not found: run npm ci at the repository root, or set SCNODE_ANVIL")


@dataclass(frozen=True)
class Anvil:
    """A running anvil process.

    Attributes:
        pid: its process id.
        port: its port on 127.0.0.1.
        log_path: file its output goes to.
    """

    pid: int
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """The HTTP JSON-RPC URL."""
        return f"http://127.0.0.1:{self.port}"


def start_anvil(
    log_path: Path,
    *,
    accounts: int = len(ANVIL_DEV_KEYS),
    block_time_s: int | None = None,
    detached: bool = False,
) -> Anvil:
    """Starts anvil on 127.0.0.1 on a port it picks, and waits until it answers.

    Args:
        log_path: where anvil's output goes (its first lines name the port).
        accounts: number of funded dev accounts (10 000 ETH each).
        block_time_s: mine every this many seconds instead of on each transaction.
        detached: run in its own session, so it outlives this process (devnet).

    Raises:
        ChainError: anvil is missing, exited, or did not start in time.
    """
    command = [str(anvil_binary()), "--host", "127.0.0.1", "--port", "0"]
    command += ["--accounts", str(accounts)]
    if block_time_s is not None:
        command += ["--block-time", str(block_time_s)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
        )
    _CHILDREN[process.pid] = process
    deadline = time.monotonic() + constants.chain_anvil_start_timeout_ms / 1000
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_bytes())
        if match and _answers(int(match.group(1))):
            return Anvil(pid=process.pid, port=int(match.group(1)), log_path=log_path)
        if process.poll() is not None:
            raise ChainError(f"anvil exited with code {process.returncode}; see {log_path}")
        time.sleep(0.02)
    stop_anvil(process.pid)
    raise ChainError(f"anvil did not start within {constants.chain_anvil_start_timeout_ms} ms")


def _answers(port: int) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}",
        data=body.encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return b"result" in response.read()
    except (urllib.error.URLError, OSError):
        return False


def stop_anvil(pid: int) -> bool:
    """Stops the anvil with process id ``pid`` (SIGTERM, then SIGKILL).

    Returns:
        True if it was running and is now stopped, False if it was not running
        or the pid belongs to something other than anvil.
    """
    if not _is_anvil(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + constants.chain_anvil_stop_timeout_ms / 1000
    while time.monotonic() < deadline:
        if _reap(pid):
            return True
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    while not _reap(pid):
        time.sleep(0.02)
    return True


def _reap(pid: int) -> bool:
    """True once ``pid`` has exited (reaps it if it is our child)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return False
        del _CHILDREN[pid]
        return True
    return not _is_anvil(pid)


def _is_anvil(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "\nState:\tZ" in status:
        return False
    program = cmdline.split(b"\0", 1)[0]
    return Path(program.decode(errors="replace")).name == "anvil"


@contextlib.contextmanager
def running_anvil(*, accounts: int = len(ANVIL_DEV_KEYS)) -> Iterator[Anvil]:
    """An anvil for the duration of the ``with`` block (tests, benchmarks).

    Yields:
        The running anvil; it is stopped on exit.
    """
    with tempfile.TemporaryDirectory(prefix="scnode-anvil-") as directory:
        anvil = start_anvil(Path(directory) / "anvil.log", accounts=accounts)
        try:
            yield anvil
        finally:
            stop_anvil(anvil.pid)
