"""The host: Noise only (plaintext and secio dialers are refused), Yamux, fast connect."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost, ISecureTransport
from libp2p.crypto.secp256k1 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.secio.transport import ID as SECIO_PROTOCOL_ID
from libp2p.security.secio.transport import Transport as SecioTransport
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr import Multiaddr

from node.p2p import P2PConfig, P2PNode, make_host, own_multiaddrs, startup_banner
from node.p2p._host import listen_multiaddrs
from node.p2p._messenger import NETWORK_ERRORS
from tests.p2p.conftest import ALICE, BOB, IVAN

pytestmark = [pytest.mark.integration]


def _insecure_dialer(protocol: str) -> IHost:
    key_pair = create_new_key_pair(IVAN.key)
    transport: ISecureTransport
    if protocol == PLAINTEXT_PROTOCOL_ID:
        transport = InsecureTransport(key_pair)
    else:
        transport = SecioTransport(key_pair)
    host: IHost = new_host(key_pair=key_pair, sec_opt={TProtocol(protocol): transport})
    return host


@pytest.mark.parametrize("protocol", [PLAINTEXT_PROTOCOL_ID, SECIO_PROTOCOL_ID])
async def test_plaintext_and_secio_dialers_are_refused(protocol: str) -> None:
    listener = make_host(BOB.key)
    dialer = _insecure_dialer(protocol)
    async with listener.run(listen_multiaddrs()), dialer.run(listen_multiaddrs()):
        target = info_from_p2p_addr(Multiaddr(own_multiaddrs(listener)[0]))
        with pytest.raises(NETWORK_ERRORS), trio.fail_after(15):
            await dialer.connect(target)
        assert listener.get_network().get_connections() == []


async def test_two_hosts_connect_over_noise_and_yamux_quickly() -> None:
    alice, bob = make_host(ALICE.key), make_host(BOB.key)
    async with alice.run(listen_multiaddrs()), bob.run(listen_multiaddrs()):
        started = time.perf_counter()
        await alice.connect(info_from_p2p_addr(Multiaddr(own_multiaddrs(bob)[0])))
        elapsed_s = time.perf_counter() - started
        (connection,) = alice.get_network().get_connections(bob.get_id())
        muxed = connection.muxed_conn
        assert isinstance(muxed, Yamux)
        assert getattr(muxed.secured_conn, "negotiated_security_protocol", None) == "/noise"
        # The default config would wait 250 ms (one connection per peer avoids it).
        assert elapsed_s < 0.25


async def test_startup_banner_names_address_peer_id_and_multiaddrs(tmp_path: Path) -> None:
    node = P2PNode(private_key=ALICE.key, state_dir=tmp_path, config=P2PConfig(gossip=False))
    async with trio.open_nursery() as nursery:
        multiaddrs = await nursery.start(node.run)
        banner = startup_banner(node)
        nursery.cancel_scope.cancel()
    assert ALICE.address in banner
    assert ALICE.peer_id in banner
    assert multiaddrs[0] in banner
    assert multiaddrs[0].startswith("/ip4/127.0.0.1/tcp/")
    assert multiaddrs[0].endswith(f"/p2p/{ALICE.peer_id}")
