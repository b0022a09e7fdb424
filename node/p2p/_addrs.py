"""Multiaddrs from peers and files, parsed and checked before anything keeps or dials them.

A multiaddr reaches the node from a gossip announcement, from the peer store file
and from the user. Each is parsed once, on receipt, into the only shape the node
dials: ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/p2p/<peer id>``, of bounded
length, for the peer that claims it. Whatever else is refused with
``InvalidValueError`` (naming the field), never kept: a bad address in the peer
store once crashed every restart of the node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from multiaddr import Multiaddr

from node.core.constants import p2p_multiaddr_chars_max, p2p_peer_id_chars_max
from node.core.errors import InvalidValueError

_HOST_PROTOCOLS: Final = ("ip4", "ip6", "dns", "dns4", "dns6")
_DNS_NAME_CHARS_MAX: Final = 253


def check_multiaddr(text: object, *, peer_id: str | None = None) -> str:
    """The canonical text of a dialable peer multiaddr.

    Args:
        text: as received (any type: peer data is not trusted to be a string).
        peer_id: the peer the address must belong to; its /p2p/ part is added when
            missing. None: the address must carry a /p2p/ part of its own.

    Returns:
        ``/<host protocol>/<host>/tcp/<port>/p2p/<peer id>``.

    Raises:
        InvalidValueError: not text, too long, unparseable, another shape, or
            another peer's.
    """
    if not isinstance(text, str):
        raise InvalidValueError("multiaddr", f"expected text, got {type(text).__name__}")
    if len(text) > p2p_multiaddr_chars_max:
        raise InvalidValueError(
            "multiaddr", f"{len(text)} characters exceed {p2p_multiaddr_chars_max}"
        )
    try:
        parts = list(Multiaddr(text).items())
    except Exception as error:  # the multiaddr package raises many kinds
        reason = str(error).partition(" (string:")[0].rsplit("': ", 1)[-1][-120:]
        raise InvalidValueError("multiaddr", f"{text[:80]!r}: {reason}") from None
    names = [protocol.name for protocol, _ in parts]
    if names[:2] not in ([host, "tcp"] for host in _HOST_PROTOCOLS) or len(names) > 3:
        raise InvalidValueError(
            "multiaddr", f"{text[:80]!r}: expected /ip4|ip6|dns*/HOST/tcp/PORT[/p2p/ID]"
        )
    host = str(parts[0][1])
    _check_host(names[0], host)
    port = int(str(parts[1][1]))
    if not 0 < port < 65536:
        raise InvalidValueError("multiaddr", f"{text[:80]!r}: port {port} not in 1..65535")
    own = str(parts[2][1]) if len(names) == 3 else None
    if len(names) == 3 and names[2] != "p2p":
        raise InvalidValueError("multiaddr", f"{text[:80]!r}: the third part must be /p2p/")
    claimed = _claimed_peer(own, peer_id, text)
    return f"/{names[0]}/{host}/tcp/{port}/p2p/{claimed}"


def _claimed_peer(own: str | None, peer_id: str | None, text: str) -> str:
    if peer_id is not None and len(peer_id) > p2p_peer_id_chars_max:
        raise InvalidValueError("peer_id", f"{len(peer_id)} characters exceed the bound")
    if own is None:
        if peer_id is None:
            raise InvalidValueError("multiaddr", f"{text[:80]!r} has no /p2p/<peer id> part")
        return peer_id
    if len(own) > p2p_peer_id_chars_max:
        raise InvalidValueError("multiaddr", "its peer id exceeds the bound")
    if peer_id is not None and own != peer_id:
        raise InvalidValueError("multiaddr", f"{text[:80]!r} is another peer's")
    return own


def _check_host(protocol: str, host: str) -> None:
    if protocol in ("ip4", "ip6"):
        try:
            parsed = ipaddress.ip_address(host)
        except ValueError:
            raise InvalidValueError("multiaddr", f"{host!r} is not an {protocol} address") from None
        if parsed.version != int(protocol[-1]):
            raise InvalidValueError("multiaddr", f"{host!r} is not an {protocol} address")
        return
    labels = host.split(".")
    if not 0 < len(host) <= _DNS_NAME_CHARS_MAX or not all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    ):
        raise InvalidValueError("multiaddr", f"{host[:80]!r} is not a DNS name")


def check_multiaddrs(
    texts: Iterable[object], *, peer_id: str, bound: int
) -> tuple[list[str], list[str]]:
    """Sort a peer's multiaddrs into the valid ones (canonical, de-duplicated, at most
    ``bound``) and the reasons the others were refused."""
    assert bound > 0
    valid: dict[str, None] = {}
    refused: list[str] = []
    for text in texts:
        try:
            canonical = check_multiaddr(text, peer_id=peer_id)
        except InvalidValueError as error:
            refused.append(str(error))
            continue
        if len(valid) < bound:
            valid[canonical] = None
    return list(valid), refused


def transport_part(text: str) -> Multiaddr:
    """The dialable part (before /p2p/) of an address that ``check_multiaddr`` accepted.

    Raises:
        InvalidValueError: the address is not one ``check_multiaddr`` accepts.
    """
    canonical = check_multiaddr(text)
    head, _, _ = canonical.partition("/p2p/")
    return Multiaddr(head)


def host_of(text: str) -> str:
    """The host part of a checked multiaddr (an IP address or DNS name)."""
    return text.split("/")[2]
