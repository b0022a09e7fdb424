"""Signed announcements: verification and the peer directory."""

from __future__ import annotations

import pytest

from node.core.errors import PeerProtocolError
from node.p2p import PeerDirectory, sign_announcement, verify_announcement
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
