"""Multiaddrs and peer ids from peers and files: parsed and checked, never trusted.

One announced ``/ip4/999.999.999.999/tcp/1/p2p/<id>`` once crashed every restart of
a node: whatever text arrives, the checks answer with a canonical address or an
``InvalidValueError``, and the dial helpers never raise at all.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.constants import p2p_multiaddr_chars_max
from node.core.errors import InvalidValueError
from node.p2p import address_bytes_from_peer_id
from node.p2p._addrs import check_multiaddr, check_multiaddrs, host_of, transport_part
from node.p2p._host import strip_peer_suffix
from tests.p2p.conftest import BOB, IRENE

POISON = f"/ip4/999.999.999.999/tcp/1/p2p/{IRENE.peer_id}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"/ip4/127.0.0.1/tcp/4001/p2p/{BOB.peer_id}",
            f"/ip4/127.0.0.1/tcp/4001/p2p/{BOB.peer_id}",
        ),
        ("/ip4/10.0.0.1/tcp/65535", f"/ip4/10.0.0.1/tcp/65535/p2p/{BOB.peer_id}"),
        ("/ip6/::1/tcp/1", f"/ip6/::1/tcp/1/p2p/{BOB.peer_id}"),
        ("/dns4/node-1.example.org/tcp/9", f"/dns4/node-1.example.org/tcp/9/p2p/{BOB.peer_id}"),
    ],
)
def test_check_multiaddr_accepts_and_completes(text: str, expected: str) -> None:
    assert check_multiaddr(text, peer_id=BOB.peer_id) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (POISON, "not IPv4"),
        (f"/ip4/1.2.3.4/tcp/0/p2p/{IRENE.peer_id}", "port 0"),
        (f"/ip4/1.2.3.4/tcp/99999/p2p/{IRENE.peer_id}", "not in range"),
        (f"/ip4/1.2.3.4/udp/1/p2p/{IRENE.peer_id}", "expected /ip4"),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{IRENE.peer_id}/tcp/2", "expected /ip4"),
        (f"/ip4/1.2.3.4/tcp/1/tcp/2/p2p/{IRENE.peer_id}", "expected /ip4"),
        ("/ip4/1.2.3.4/tcp/1", "no /p2p/"),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{BOB.peer_id}", "another peer"),
        ("garbage", "multiaddr"),
        ("", "multiaddr"),
        ("/ip4/1.2.3.4/tcp/1/p2p/" + "1" * 300, "characters exceed"),
        (7, "expected text"),
        (None, "expected text"),
    ],
)
def test_check_multiaddr_refuses(text: object, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        check_multiaddr(text, peer_id=IRENE.peer_id if text != "/ip4/1.2.3.4/tcp/1" else None)


def test_check_multiaddrs_keeps_the_valid_ones_in_order_within_the_bound() -> None:
    texts = [POISON, "/ip4/1.1.1.1/tcp/1", 3, "/ip4/1.1.1.1/tcp/1", "/ip4/2.2.2.2/tcp/2"]
    valid, refused = check_multiaddrs(texts, peer_id=IRENE.peer_id, bound=1)
    assert valid == [f"/ip4/1.1.1.1/tcp/1/p2p/{IRENE.peer_id}"]
    assert len(refused) == 2


def test_strip_peer_suffix_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    good = f"/ip4/127.0.0.1/tcp/4002/p2p/{IRENE.peer_id}"
    assert [str(m) for m in strip_peer_suffix([POISON, "junk", good])] == [
        "/ip4/127.0.0.1/tcp/4002"
    ]
    assert sum("not dialling" in record.message for record in caplog.records) == 2
    assert host_of(good) == "127.0.0.1"
    assert str(transport_part(good)) == "/ip4/127.0.0.1/tcp/4002"


@pytest.mark.parametrize(
    "peer_id",
    ["", "x", "1" * 60, "Qm" + "z" * 44, "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],
)
def test_a_peer_id_that_is_not_secp256k1_is_refused(peer_id: str) -> None:
    with pytest.raises(InvalidValueError, match="peer_id"):
        address_bytes_from_peer_id(peer_id)


# Property tests -------------------------------------------------------------------------

_ip4 = st.ip_addresses(v=4).map(str)
_ip6 = st.ip_addresses(v=6).map(str)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_dns = st.lists(_label, min_size=1, max_size=4).map(".".join)
_host = st.one_of(
    st.tuples(st.just("ip4"), _ip4),
    st.tuples(st.just("ip6"), _ip6),
    st.tuples(st.sampled_from(["dns", "dns4", "dns6"]), _dns),
)
_valid = st.builds(
    lambda host, port: f"/{host[0]}/{host[1]}/tcp/{port}", _host, st.integers(1, 65535)
)
_pieces = st.sampled_from(
    ["ip4", "ip6", "tcp", "udp", "p2p", "dns4", "quic-v1", "999.1.1.1", "::", "0", "65536", ""]
)
_junk = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_pieces, st.text(max_size=12)), max_size=8).map(lambda p: "/" + "/".join(p)),
)


@settings(max_examples=300, deadline=None)
@given(_junk)
def test_any_text_is_answered_with_an_address_or_an_invalid_value(text: str) -> None:
    try:
        canonical = check_multiaddr(text, peer_id=IRENE.peer_id)
    except InvalidValueError:
        return
    # What is accepted is canonical, of the dialable shape, and accepted again as it is.
    assert check_multiaddr(canonical) == canonical
    assert len(canonical) <= p2p_multiaddr_chars_max + len(IRENE.peer_id) + 5
    assert canonical.endswith(f"/p2p/{IRENE.peer_id}")
    assert strip_peer_suffix([canonical])


@settings(max_examples=300, deadline=None)
@given(_valid)
def test_every_well_formed_address_is_accepted(text: str) -> None:
    canonical = check_multiaddr(text, peer_id=BOB.peer_id)
    assert canonical.endswith(f"/p2p/{BOB.peer_id}")
    host = host_of(canonical)
    if text.startswith("/ip"):
        assert ipaddress.ip_address(host) == ipaddress.ip_address(text.split("/")[2])
    assert [str(m) for m in strip_peer_suffix([canonical])] == [canonical.rpartition("/p2p/")[0]]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_peer_id_text_is_an_address_or_an_invalid_value(text: str) -> None:
    try:
        address = address_bytes_from_peer_id(text)
    except InvalidValueError:
        return
    assert len(address) == 20
