"""The dashboard page's plumbing: where a browser puts the token, and what the page may do.

A browser opens ``/dashboard?token=...`` (``scnode dashboard`` prints the URL); the
page's script then sends the token in an Authorization header on each call, and, since
a browser cannot set headers on a WebSocket, as one of the protocols it offers
(``bearer.<token>``) beside ``scnode``, which the node chooses.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qs

SUBPROTOCOL = "scnode"
_TOKEN_PROTOCOL_PREFIX = "bearer."
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def dashboard_page() -> bytes:
    """The dashboard's HTML, shipped beside this module."""
    return resources.files("node.rpc").joinpath("dashboard.html").read_bytes()


def page_token(target: bytes) -> bytes | None:
    """The token of ``/dashboard?token=...``, if the URL carries one."""
    _, _, query = target.partition(b"?")
    values = parse_qs(query.decode("ascii", "replace")).get("token")
    return values[0].encode("ascii", "replace") if values else None


@dataclass(frozen=True)
class OfferedToken:
    """What a WebSocket upgrade offers in Sec-WebSocket-Protocol: a token, and the
    protocol the node then chooses (None: the client offered none)."""

    token: bytes | None
    subprotocol: str | None


def websocket_token(protocols: bytes | None) -> OfferedToken:
    """The token a browser offers as the protocol ``bearer.<token>`` beside ``scnode``."""
    if protocols is None:
        return OfferedToken(None, None)
    offered = [item.strip() for item in protocols.decode("ascii", "replace").split(",")]
    token = next(
        (
            item.removeprefix(_TOKEN_PROTOCOL_PREFIX)
            for item in offered
            if item.startswith(_TOKEN_PROTOCOL_PREFIX)
        ),
        None,
    )
    return OfferedToken(
        token.encode("ascii") if token else None,
        SUBPROTOCOL if SUBPROTOCOL in offered else None,
    )


def page_headers(page: bytes) -> list[tuple[str, str]]:
    """Headers that keep the page to itself: its own inline scripts only (by hash), calls
    to its own origin only, no framing, no caching, the token in no Referer."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode('ascii')}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    policy = (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    )
    return [
        ("content-security-policy", policy),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ]
