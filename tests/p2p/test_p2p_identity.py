"""Peer identity: golden peer ids and addresses of the test actors."""

from __future__ import annotations

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_key_pair
from libp2p.peer.id import ID

from node.core.errors import InvalidValueError
from node.p2p import address_from_peer_id, make_host, peer_id_from_private_key
from node.p2p._identity import (
    address_bytes_from_private_key,
    checksum_address,
    key_pair_from_private_key,
    parse_address,
)
from tests.p2p.conftest import ACTORS, Actor


@pytest.mark.parametrize("actor", ACTORS, ids=lambda actor: actor.name)
def test_peer_id_golden(actor: Actor) -> None:
    assert peer_id_from_private_key(actor.key).to_base58() == actor.peer_id


@pytest.mark.parametrize("actor", ACTORS, ids=lambda actor: actor.name)
def test_address_from_peer_id_golden(actor: Actor) -> None:
    assert address_from_peer_id(actor.peer_id) == actor.address
    assert address_from_peer_id(ID.from_base58(actor.peer_id)) == actor.address
    assert checksum_address(address_bytes_from_private_key(actor.key)) == actor.address


@pytest.mark.parametrize("actor", ACTORS, ids=lambda actor: actor.name)
def test_host_identity_is_the_node_key(actor: Actor) -> None:
    assert make_host(actor.key).get_id().to_base58() == actor.peer_id


def test_ed25519_peer_id_has_no_address() -> None:
    peer_id = ID.from_pubkey(ed25519_key_pair(b"\x07" * 32).public_key)
    with pytest.raises(InvalidValueError, match="secp256k1"):
        address_from_peer_id(peer_id)


@pytest.mark.parametrize("text", ["", "not-a-peer-id", "0OIl"])
def test_malformed_peer_id_is_refused(text: str) -> None:
    with pytest.raises(InvalidValueError, match="peer_id"):
        address_from_peer_id(text)


@pytest.mark.parametrize(
    ("key", "message"),
    [(b"\x01" * 31, "32 bytes"), (b"\x00" * 32, "secp256k1"), (b"\xff" * 32, "secp256k1")],
)
def test_bad_private_key_is_refused(key: bytes, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        key_pair_from_private_key(key)


def test_parse_address() -> None:
    alice = ACTORS[0]
    raw = parse_address(alice.address)
    assert parse_address(alice.address.lower()) == raw
    assert parse_address(raw) == raw
    with pytest.raises(InvalidValueError, match="20 bytes"):
        parse_address("0x1234")
    with pytest.raises(InvalidValueError, match="not hex"):
        parse_address("0xzz")
