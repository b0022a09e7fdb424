"""A node's home directory: its keys, its event log and its small state files.

Layout (docs/adr/0003-key-handling.md):

    HOME/node.key     secp256k1 private key of the node, 64 hex chars, mode 0600
    HOME/chain.key    optional separate key that pays for transactions, mode 0600
    HOME/log/         the RocksDB event log
    HOME/p2p/         peer store and other networking state
    HOME/rpc.token    the JSON-RPC auth token, mode 0600
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from node.core.errors import ScnodeError

_SECRET_FILE_MODE = 0o600
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class HomeError(ScnodeError):
    """The home directory or a key in it is missing, unsafe or malformed."""


@dataclass(frozen=True)
class NodeHome:
    """Paths inside one node's home directory."""

    root: Path

    @property
    def node_key_path(self) -> Path:
        return self.root / "node.key"

    @property
    def chain_key_path(self) -> Path:
        return self.root / "chain.key"

    @property
    def log_path(self) -> Path:
        return self.root / "log"

    @property
    def p2p_path(self) -> Path:
        return self.root / "p2p"

    @property
    def rpc_token_path(self) -> Path:
        return self.root / "rpc.token"

    def initialise(self, *, node_key: bytes | None = None) -> None:
        """Create the directory and a node key; refuses to overwrite an existing key."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if self.node_key_path.exists():
            raise HomeError(f"{self.node_key_path} exists already: refusing to replace a key")
        key = node_key if node_key is not None else generate_private_key()
        write_secret(self.node_key_path, key.hex())

    def node_key(self) -> bytes:
        """The node's private key, checked for its file mode and its range."""
        return read_private_key(self.node_key_path)

    def chain_key(self) -> bytes:
        """The key that pays for transactions: chain.key if present, else node.key."""
        if self.chain_key_path.exists():
            return read_private_key(self.chain_key_path)
        return self.node_key()


def generate_private_key() -> bytes:
    """A fresh secp256k1 private key from the OS's CSPRNG."""
    while True:
        candidate = secrets.token_bytes(32)
        if 0 < int.from_bytes(candidate, "big") < _SECP256K1_ORDER:
            return candidate


def write_secret(path: Path, text: str) -> None:
    """Write a secret file atomically, readable by its owner only."""
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _SECRET_FILE_MODE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_secret(path: Path) -> str:
    """Read a secret file, refusing one that others can read or write."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise HomeError(f"{path} not found: run `scnode init --home {path.parent}`") from None
    if mode & 0o077:
        raise HomeError(f"{path} has mode {mode:o}: it must be readable by its owner only (0600)")
    return path.read_text().strip()


def read_private_key(path: Path) -> bytes:
    """A 32-byte private key from a 0600 file of 64 hex characters."""
    text = read_secret(path)
    try:
        key = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise HomeError(f"{path}: not a hex private key") from None
    if len(key) != 32 or not 0 < int.from_bytes(key, "big") < _SECP256K1_ORDER:
        raise HomeError(f"{path}: not a valid secp256k1 private key")
    return key
