"""A node's home directory: its keys, its event log and its small state files.

Layout (docs/adr/0003-key-handling.md):

    HOME/node.key     secp256k1 private key of the node, 64 hex chars, mode 0600
    HOME/chain.key    optional separate key that pays for transactions, mode 0600
    HOME/log/         the RocksDB event log
    HOME/p2p/         peer store and other networking state
    HOME/rpc.token    the JSON-RPC auth token, mode 0600
    HOME/views/       view modules and their SQLite databases (docs/adr/0009-views.md)
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from node.core.constants import secret_file_bytes_max
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

    @property
    def views_path(self) -> Path:
        return self.root / "views"

    def initialise(self, *, node_key: bytes | None = None) -> None:
        """Create the directory and a node key; refuses to overwrite an existing key."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if os.path.lexists(self.node_key_path):  # a symlink, even dangling, is not replaced
            raise HomeError(f"{self.node_key_path} exists already: refusing to replace a key")
        key = node_key if node_key is not None else generate_private_key()
        write_secret(self.node_key_path, key.hex())

    def node_key(self) -> bytes:
        """The node's private key, checked for its file mode and its range."""
        return read_private_key(self.node_key_path)

    def chain_key(self) -> bytes:
        """The key that pays for transactions: chain.key if present, else node.key."""
        if os.path.lexists(self.chain_key_path):  # a symlink here is refused, not skipped
            return read_private_key(self.chain_key_path)
        return self.node_key()


def generate_private_key() -> bytes:
    """A fresh secp256k1 private key from the OS's CSPRNG."""
    while True:
        candidate = secrets.token_bytes(32)
        if 0 < int.from_bytes(candidate, "big") < _SECP256K1_ORDER:
            return candidate


def write_secret(path: Path, text: str) -> None:
    """Create a secret file, readable by its owner only; never replace or follow anything.

    The text goes to a fresh temporary name in the same directory, opened with
    ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600, and is fsynced; the file is then
    hard-linked to ``path``. ``link`` fails on anything already at ``path`` (a file, a
    directory, a symlink, dangling or not) without following it, so a planted link
    cannot redirect the write, a secret appears whole or not at all, and of two
    writers racing one wins and the other is refused. No secret file is ever
    rewritten: a new one is a new file.

    Raises:
        HomeError: something exists at ``path`` already, or the file cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        _write_new_file(temporary, text + "\n")
    except OSError as error:
        raise HomeError(f"{path}: cannot write {temporary.name}: {error.strerror}") from None
    try:
        os.link(temporary, path, follow_symlinks=False)
    except FileExistsError:
        raise HomeError(f"{path} exists already: refusing to replace it") from None
    except OSError as error:
        raise HomeError(f"{path}: cannot write: {error.strerror}") from None
    finally:
        os.unlink(temporary)
    _fsync_directory(path.parent)


def _write_new_file(path: Path, text: str) -> None:
    """Create ``path`` (0600) with ``text``; never follows or reuses what is there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(path, flags, _SECRET_FILE_MODE)
    written = False
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            os.fchmod(handle.fileno(), _SECRET_FILE_MODE)  # exactly 0600, whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        written = True
    finally:
        if not written:
            os.unlink(path)  # ours: O_EXCL created it


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_secret(path: Path) -> str:
    """Read a secret file: a regular file, not a symlink, that only its owner can use.

    An unsafe file is refused, not repaired, as ssh refuses an unprotected key: a key
    that others could read must be presumed leaked, and only the operator can decide
    whether to keep it (``chmod 600``) or replace it. The checks are made on the open
    file, so the file checked is the file read.

    Raises:
        HomeError: the file is missing, a symlink, not a regular file, readable or
            writable by group or others, larger than ``secret_file_bytes_max``, or
            not text.
    """
    # O_NOFOLLOW: a symlink fails with ELOOP; O_NONBLOCK: a FIFO cannot hang the open.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise HomeError(f"{path} not found: run `scnode init --home {path.parent}`") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise HomeError(
                f"{path} is a symbolic link: a secret file must be the file itself"
            ) from None
        raise HomeError(f"{path}: cannot read: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise HomeError(f"{path} is not a regular file")
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise HomeError(
                f"{path} has mode {mode:o}: it must be readable by its owner only (0600); "
                f"if no one else can have read it, `chmod 600 {path}`, else replace it"
            )
        data = handle.read(secret_file_bytes_max + 1)
    if len(data) > secret_file_bytes_max:
        raise HomeError(f"{path} is larger than {secret_file_bytes_max} bytes: not a secret file")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise HomeError(f"{path} is not text: not a secret file") from None


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
