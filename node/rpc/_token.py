"""The RPC auth token: random per node, kept in HOME/rpc.token (mode 0600)."""

from __future__ import annotations

import hmac
import os
import re
import secrets

from node.core import constants
from node.home import HomeError, NodeHome, read_secret, write_secret

# token_urlsafe(32) gives 43 characters; accept any such token of at least that entropy.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43,256}")


def generate_rpc_token() -> str:
    """A fresh token from the OS's CSPRNG."""
    return secrets.token_urlsafe(constants.rpc_token_bytes)


def load_rpc_token(home: NodeHome) -> str:
    """The node's token, refusing a file others can read or a malformed token.

    Raises:
        HomeError: the file is missing, a symlink, not 0600, or not a token.
    """
    token = read_secret(home.rpc_token_path)
    if not _TOKEN.fullmatch(token):
        raise HomeError(f"{home.rpc_token_path}: not an RPC token (43+ url-safe characters)")
    return token


def load_or_create_rpc_token(home: NodeHome) -> str:
    """The node's token, created (0600) on first use and reused after.

    Raises:
        HomeError: an existing file is a symlink, not 0600 or not a token.
    """
    # lexists: a symlink at the path, even a dangling one, is left alone and then refused.
    if not os.path.lexists(home.rpc_token_path):
        home.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret(home.rpc_token_path, generate_rpc_token())
    return load_rpc_token(home)


def token_matches(presented: str | bytes | None, token: str) -> bool:
    """Whether ``presented`` is ``token``, compared in constant time."""
    if presented is None:
        return False
    raw = presented if isinstance(presented, bytes) else presented.encode("utf-8", "replace")
    return hmac.compare_digest(raw, token.encode("ascii"))


def bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header value, if that is its form."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return value.strip() or None
