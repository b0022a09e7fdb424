"""The libp2p host: TCP, Noise only, Yamux only, one connection per peer."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.x25519 import create_new_key_pair as _x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr import Multiaddr

from node.core.constants import (
    p2p_connections_max,
    p2p_handshake_timeout_ms,
)
from node.core.errors import InvalidValueError
from node.p2p._addrs import transport_part
from node.p2p._admission import InboundGate
from node.p2p._identity import key_pair_from_private_key
from node.p2p._yamux import install as install_batched_credit

logger = logging.getLogger("node.p2p")

MESSAGE_PROTOCOL = TProtocol("/scnode/msg/1.0.0")


def make_host(private_key: bytes) -> IHost:
    """A host whose identity is the node key.

    A default py-libp2p host also accepts plaintext and secio; this one offers
    and accepts Noise only. One connection per peer also removes the 250 ms
    "happy eyeballs" wait that py-libp2p adds to every dial otherwise. The
    auto-connector is off (no minimum connection count): it would dial every
    peer it heard of, and its failed dials put a peer on py-libp2p's 60 s
    dial block just when the node's own redial (with backoff) should reach it.
    Inbound connections are admitted by ``InboundGate`` (see _admission.py).
    """
    install_batched_credit()  # one window update per half window read, not per read
    key_pair = key_pair_from_private_key(private_key)
    noise = NoiseTransport(key_pair, noise_privkey=_x25519_key_pair().private_key)
    host: IHost = new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL_ID: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        connection_config=ConnectionConfig(
            max_connections_per_peer=1,
            min_connections=0,
            low_watermark=0,
            max_connections=p2p_connections_max,
            high_watermark=p2p_connections_max,
            inbound_upgrade_timeout=p2p_handshake_timeout_ms / 1000,
        ),
    )
    InboundGate(host.get_network()).install()
    return host


def allow_redial(host: IHost, peer_id: ID) -> None:
    """Lift py-libp2p's 60 s block on a peer whose addresses all failed once.

    Callers keep their own per-peer backoff; without this a peer that restarts
    within the minute would stay unreachable until the block expires.
    """
    unblock = getattr(host.get_network(), "unblock_peer", None)
    if unblock is not None:
        unblock(peer_id)


def listen_multiaddrs(host: str = "127.0.0.1", port: int = 0) -> list[Multiaddr]:
    """The TCP listen addresses for ``host.run()``."""
    return [Multiaddr(f"/ip4/{host}/tcp/{port}")]


def own_multiaddrs(host: IHost) -> list[str]:
    """The host's dialable addresses, each ending in /p2p/<peer id>."""
    peer_suffix = f"/p2p/{host.get_id().to_base58()}"
    addrs: list[str] = []
    for addr in host.get_addrs():
        text = str(addr)
        addrs.append(text if text.endswith(peer_suffix) else text + peer_suffix)
    return addrs


def strip_peer_suffix(addrs: Sequence[str]) -> list[Multiaddr]:
    """Transport parts of /.../p2p/<id> addresses, for the libp2p peerstore.

    Never raises: an address that does not check (``check_multiaddr``) is left out
    with a warning, so no stored or announced address can stop a dial loop.
    """
    result: list[Multiaddr] = []
    for text in addrs:
        try:
            result.append(transport_part(text))
        except InvalidValueError as error:
            logger.warning("not dialling %s", error)
    return result
