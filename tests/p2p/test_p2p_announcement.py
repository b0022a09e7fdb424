"""Signed announcements: verification and the peer directory."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.errors import PeerProtocolError
from node.p2p import (
    DirectoryEntry,
    PeerDirectory,
    peer_id_from_private_key,
    sign_announcement,
    verify_announcement,
)
from node.p2p._host import strip_peer_suffix
from node.p2p._identity import address_bytes_from_private_key, checksum_address
from node.proto import wire_pb2
from tests.p2p.conftest import ALICE, BOB

NOW_MS = 1_800_000_000_000


def _announcement(**changes: object) -> wire_pb2.Announcement:
    announcement = wire_pb2.Announcement(
        address=bytes.fromhex(ALICE.address[2:]),
        peer_id=ALICE.peer_id,
        multiaddrs=[f"/ip4/127.0.0.1/tcp/4001/p2p/{ALICE.peer_id}"],
        ledgers=[
            wire_pb2.LedgerOffer(
                channel_id=b"\x05" * 32,
                counterparty=bytes.fromhex(BOB.address[2:]),
                asset=b"\x00" * 20,
                capacity=(10**18).to_bytes(32, "big"),
            )
        ],
        time_ms=NOW_MS,
    )
    for name, value in changes.items():
        if isinstance(value, list):
            field = getattr(announcement, name)
            del field[:]
            field.extend(value)
        else:
            setattr(announcement, name, value)
    return announcement


def test_signed_announcement_verifies() -> None:
    data = sign_announcement(_announcement(), ALICE.key)
    entry = verify_announcement(data, origin_peer_id=ALICE.peer_id, now_ms=NOW_MS)
    assert entry.address == ALICE.address
    assert entry.peer_id == ALICE.peer_id
    assert entry.multiaddrs == (f"/ip4/127.0.0.1/tcp/4001/p2p/{ALICE.peer_id}",)
    assert entry.ledgers[0].capacity == (10**18).to_bytes(32, "big")


def test_tampered_announcement_is_refused() -> None:
    signed = wire_pb2.SignedAnnouncement.FromString(sign_announcement(_announcement(), ALICE.key))
    forged = _announcement(multiaddrs=[f"/ip4/6.6.6.6/tcp/1/p2p/{ALICE.peer_id}"])
    signed.announcement = forged.SerializeToString()
    with pytest.raises(PeerProtocolError, match="not by the announced address"):
        verify_announcement(signed.SerializeToString(), origin_peer_id=ALICE.peer_id, now_ms=NOW_MS)


def test_announcement_relayed_under_another_origin_is_refused() -> None:
    data = sign_announcement(_announcement(), ALICE.key)
    with pytest.raises(PeerProtocolError, match="published by"):
        verify_announcement(data, origin_peer_id=BOB.peer_id, now_ms=NOW_MS)


@pytest.mark.parametrize(
    ("changes", "now_ms", "message"),
    [
        ({"peer_id": BOB.peer_id}, NOW_MS, r"published by|different keys"),
        ({}, NOW_MS + 11 * 60 * 1000, "stale"),
        ({}, NOW_MS - 2 * 60 * 1000, "future"),
        ({"multiaddrs": [f"/ip4/1.2.3.4/tcp/1/p2p/{BOB.peer_id}"]}, NOW_MS, "another peer"),
        (
            {"ledgers": [wire_pb2.LedgerOffer(channel_id=b"\x01", counterparty=b"", asset=b"")]},
            NOW_MS,
            "channel_id",
        ),
    ],
)
def test_bad_announcement_is_refused(changes: dict[str, object], now_ms: int, message: str) -> None:
    data = sign_announcement(_announcement(**changes), ALICE.key)
    origin = str(changes.get("peer_id", ALICE.peer_id))
    with pytest.raises(PeerProtocolError, match=message):
        verify_announcement(data, origin_peer_id=origin, now_ms=now_ms)


@pytest.mark.parametrize("data", [b"\xff\xff", b"\x0a\x02\x08", b"x" * 70_000])
def test_garbage_announcement_is_refused(data: bytes) -> None:
    with pytest.raises(PeerProtocolError, match=r"malformed|exceeds|signature"):
        verify_announcement(data, origin_peer_id=ALICE.peer_id, now_ms=NOW_MS)


def test_directory_keeps_the_newest_announcement() -> None:
    directory = PeerDirectory()
    older = verify_announcement(
        sign_announcement(_announcement(time_ms=NOW_MS - 5), ALICE.key),
        origin_peer_id=ALICE.peer_id,
        now_ms=NOW_MS,
    )
    newer = verify_announcement(
        sign_announcement(_announcement(), ALICE.key), origin_peer_id=ALICE.peer_id, now_ms=NOW_MS
    )
    assert directory.update(newer)
    assert not directory.update(older)
    address = bytes.fromhex(ALICE.address[2:])
    assert directory.lookup(address) == newer
    contact = directory.contact(address)
    assert contact is not None
    assert contact.peer_id == ALICE.peer_id
    assert directory.contact(b"\x00" * 20) is None


# Bounds of announcements and of the directory (sybils, clocks, lists) ------------------

ALICE_RAW, BOB_RAW = bytes.fromhex(ALICE.address[2:]), bytes.fromhex(BOB.address[2:])


@pytest.mark.parametrize(
    ("changes", "now_ms", "message"),
    [
        ({}, NOW_MS - 6_000, "future"),  # 6 s ahead of our clock: beyond the 5 s skew
        ({}, NOW_MS + 61_000, "stale"),
        ({"peer_id": "x" * 200}, NOW_MS, "peer id longer"),
        ({"multiaddrs": [f"/ip4/999.999.999.999/tcp/1/p2p/{ALICE.peer_id}"]}, NOW_MS, "IPv4"),
        ({"multiaddrs": [f"/ip4/1.2.3.4/udp/1/p2p/{ALICE.peer_id}"]}, NOW_MS, "expected /ip4"),
        (
            {"multiaddrs": [f"/ip4/1.2.3.{n}/tcp/1/p2p/{ALICE.peer_id}" for n in range(17)]},
            NOW_MS,
            "17 multiaddrs",
        ),
        ({"ledgers": [_announcement().ledgers[0]] * 2}, NOW_MS, "a ledger twice"),
        (
            {"ledgers": [wire_pb2.LedgerOffer(channel_id=b"\x01" * 32, counterparty=ALICE_RAW)]},
            NOW_MS,
            "with itself",
        ),
        (
            {
                "ledgers": [
                    wire_pb2.LedgerOffer(
                        channel_id=n.to_bytes(32, "big"), counterparty=BOB_RAW, asset=bytes(20)
                    )
                    for n in range(257)
                ]
            },
            NOW_MS,
            "257 ledgers",
        ),
    ],
)
def test_announcement_bounds(changes: dict[str, object], now_ms: int, message: str) -> None:
    data = sign_announcement(_announcement(**changes), ALICE.key)
    origin = str(changes.get("peer_id", ALICE.peer_id))
    with pytest.raises(PeerProtocolError, match=message):
        verify_announcement(data, origin_peer_id=origin, now_ms=now_ms)


def test_announcement_within_the_skew_is_taken() -> None:
    data = sign_announcement(_announcement(), ALICE.key)
    assert verify_announcement(data, origin_peer_id=ALICE.peer_id, now_ms=NOW_MS - 4_000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2_000))
def test_any_bytes_are_an_entry_or_a_protocol_error(data: bytes) -> None:
    try:
        entry = verify_announcement(data, origin_peer_id=ALICE.peer_id, now_ms=NOW_MS)
    except PeerProtocolError:
        return
    raise AssertionError(f"random bytes verified: {entry}")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(max_size=80), max_size=20),
    st.integers(0, 2**64 - 1),
    st.lists(st.binary(max_size=40), max_size=3),
)
def test_any_signed_announcement_is_an_entry_or_a_protocol_error(
    multiaddrs: list[str], time_ms: int, channel_ids: list[bytes]
) -> None:
    ledgers = [
        wire_pb2.LedgerOffer(channel_id=c, counterparty=BOB_RAW, asset=bytes(20))
        for c in channel_ids
    ]
    announcement = _announcement(multiaddrs=multiaddrs, ledgers=ledgers, time_ms=time_ms)
    data = sign_announcement(announcement, ALICE.key)
    try:
        entry = verify_announcement(data, origin_peer_id=ALICE.peer_id, now_ms=NOW_MS)
    except PeerProtocolError:
        return
    # What passes is bounded and dialable.
    assert len(entry.multiaddrs) <= 16
    assert all(strip_peer_suffix(entry.multiaddrs) for _ in entry.multiaddrs)
    assert NOW_MS - 60_000 <= entry.announced_ms <= NOW_MS + 5_000


def _entry(index: int, *, host: str | None = None, at_ms: int = NOW_MS) -> DirectoryEntry:
    """A verified entry of a made-up node (the directory trusts its caller's checks)."""
    key = (index + 1).to_bytes(32, "big")
    peer_id = peer_id_from_private_key(key).to_base58()
    address = checksum_address(address_bytes_from_private_key(key))
    where = host or f"10.0.{index // 250}.{index % 250 + 1}"
    return DirectoryEntry(
        address=address,
        peer_id=peer_id,
        multiaddrs=(f"/ip4/{where}/tcp/4001/p2p/{peer_id}",),
        ledgers=(),
        announced_ms=at_ms,
    )


def _raw(entry: DirectoryEntry) -> bytes:
    return bytes.fromhex(entry.address[2:])


def test_directory_bounds_nodes_per_host() -> None:
    directory = PeerDirectory(per_host_max=3)
    same_host = [_entry(n, host="6.6.6.6") for n in range(5)]
    assert [directory.update(entry) for entry in same_host] == [True, True, True, False, False]
    assert directory.refused == 2
    # A node already held refreshes on the same host.
    assert directory.update(_entry(0, host="6.6.6.6", at_ms=NOW_MS + 5_000))
    assert directory.update(_entry(9, host="7.7.7.7"))
    assert len(directory) == 4


def test_directory_takes_one_refresh_per_interval() -> None:
    directory = PeerDirectory(refresh_ms_min=1_000)
    assert directory.update(_entry(1), now_ms=NOW_MS)
    assert not directory.update(_entry(1, at_ms=NOW_MS + 10), now_ms=NOW_MS + 10)
    assert directory.update(_entry(1, at_ms=NOW_MS + 1_000), now_ms=NOW_MS + 1_000)
    entry = directory.lookup(_raw(_entry(1)))
    assert entry is not None
    assert entry.announced_ms == NOW_MS + 1_000


def test_a_sybil_flood_pushes_out_neither_refreshed_nor_protected_nodes() -> None:
    honest, partner = _entry(0), _entry(1)
    directory = PeerDirectory(capacity=10, protected=lambda: {_raw(partner)})
    directory.update(partner, now_ms=NOW_MS - 50_000)  # long silent, but we have a channel
    now = NOW_MS
    for wave in range(5):
        now += 2_000
        directory.update(_entry(0, at_ms=now), now_ms=now)  # honest: refreshes every round
        for sybil in range(10):
            index = 100 + wave * 10 + sybil
            directory.update(_entry(index, at_ms=now), now_ms=now + 1)
        assert directory.lookup(_raw(honest)) is not None
        assert directory.lookup(_raw(partner)) is not None
        assert len(directory) == 10


def test_a_node_gone_silent_is_pushed_out_first() -> None:
    directory = PeerDirectory(capacity=2)
    directory.update(_entry(0), now_ms=NOW_MS)
    directory.update(_entry(1), now_ms=NOW_MS + 50_000)
    assert directory.update(_entry(2, at_ms=NOW_MS + 70_000), now_ms=NOW_MS + 70_000)
    assert directory.lookup(_raw(_entry(0))) is None  # silent for 70 s
    assert directory.lookup(_raw(_entry(1))) is not None


def test_a_full_directory_of_protected_nodes_refuses_newcomers() -> None:
    held = [_entry(n) for n in range(3)]
    directory = PeerDirectory(capacity=3, protected=lambda: {_raw(e) for e in held})
    assert all(directory.update(entry) for entry in held)
    assert not directory.update(_entry(7))
    assert directory.refused == 1


def _offer(
    channel: int, counterparty: DirectoryEntry, asset: bytes = bytes(20)
) -> wire_pb2.LedgerOffer:
    return wire_pb2.LedgerOffer(
        channel_id=channel.to_bytes(32, "big"),
        counterparty=_raw(counterparty),
        asset=asset,
        capacity=(100).to_bytes(32, "big"),
    )


def test_routes_use_only_ledgers_both_ends_announce() -> None:
    a, b, c, d = (_entry(n) for n in range(4))
    directory = PeerDirectory()
    directory.update(replace(a, ledgers=(_offer(1, b), _offer(2, c), _offer(3, d))))
    directory.update(replace(b, ledgers=(_offer(1, a),)))  # agrees on channel 1
    directory.update(replace(c, ledgers=(_offer(9, a),)))  # another channel id
    directory.update(replace(d, ledgers=(_offer(3, a, asset=b"\x01" * 20),)))  # another asset
    routable = dict(directory.routable_offers())
    assert [offer.channel_id[-1] for offer in routable[a.address]] == [1]
    assert [offer.channel_id[-1] for offer in routable[b.address]] == [1]
    assert c.address not in routable
    assert d.address not in routable
