"""The persistent peer store and the peers/connect commands."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import pytest

from node.cli import _peers
from node.core.errors import InvalidValueError
from node.home import NodeHome
from node.p2p import PeerStore, parse_peer_multiaddr
from tests.p2p.conftest import ACTORS, ALICE, BOB, IRENE

BOB_ADDR = f"/ip4/127.0.0.1/tcp/4001/p2p/{BOB.peer_id}"
ED25519_PEER = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
IRENE_ADDR = f"/ip4/127.0.0.1/tcp/4002/p2p/{IRENE.peer_id}"


def test_add_save_load_round_trip(tmp_path: Path) -> None:
    store = PeerStore.load(tmp_path)
    assert store.records() == []
    store.add(BOB.peer_id, [BOB_ADDR], dial=True)
    store.add(IRENE.peer_id, [IRENE_ADDR], dial=False)
    store.set_connected(BOB.peer_id, True, 1_700_000_000_000)
    store.save()
    loaded = PeerStore.load(tmp_path)
    assert loaded.records() == store.records()
    bob = loaded.by_address(BOB.address)
    assert bob is not None
    assert bob.dial
    assert bob.connected
    assert bob.address == BOB.address
    contact = loaded.contact(bytes.fromhex(IRENE.address[2:]))
    assert contact is not None
    assert contact.multiaddrs == (IRENE_ADDR,)
    loaded.mark_all_disconnected()
    assert not any(record.connected for record in loaded.records())


def test_add_merges_multiaddrs_and_keeps_dial(tmp_path: Path) -> None:
    store = PeerStore.load(tmp_path)
    store.add(BOB.peer_id, [BOB_ADDR], dial=True)
    newer = BOB_ADDR.replace("4001", "4009")
    record = store.add(BOB.peer_id, [newer], dial=False)
    assert record.multiaddrs == (newer, BOB_ADDR)
    assert record.dial


def test_merge_from_disk_takes_in_other_writers(tmp_path: Path) -> None:
    mine = PeerStore.load(tmp_path)
    mine.add(IRENE.peer_id, [IRENE_ADDR], dial=False)
    other = PeerStore.load(tmp_path)
    other.add(BOB.peer_id, [BOB_ADDR], dial=True)
    other.save()
    changed = mine.merge_from_disk()
    assert [record.peer_id for record in changed] == [BOB.peer_id]
    assert {record.peer_id for record in mine.records()} == {BOB.peer_id, IRENE.peer_id}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "unreadable peer store"),
        ('{"version": 9, "peers": []}', "expected"),
        ('{"version": 1, "peers": {}}', "must be a list"),
    ],
)
def test_corrupt_store_is_refused_with_its_path(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "peers.json").write_text(content)
    with pytest.raises(InvalidValueError, match=message) as caught:
        PeerStore.load(tmp_path)
    assert "peers.json" in str(caught.value)
    # The running node never stops on it: it keeps the file aside and starts empty.
    assert PeerStore.load_or_start_empty(tmp_path).records() == []
    assert (tmp_path / "peers.json.corrupt").read_text() == content
    assert not (tmp_path / "peers.json").exists()


_POISON = "/ip4/999.999.999.999/tcp/1/p2p/" + IRENE.peer_id


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"peer_id": "x", "multiaddrs": []}, "peer_id"),
        (3, "must be an object"),
        ({"peer_id": IRENE.peer_id, "multiaddrs": "nope"}, "must be a list"),
        ({"peer_id": IRENE.peer_id, "multiaddrs": [], "last_seen_ms": -1}, "last_seen_ms"),
        ({"peer_id": 7, "multiaddrs": []}, "peer_id"),
        ({"multiaddrs": []}, "peer_id"),
    ],
)
def test_a_bad_entry_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, entry: object, message: str
) -> None:
    good = {"peer_id": BOB.peer_id, "multiaddrs": [BOB_ADDR], "dial": True}
    document = {"version": 1, "peers": [entry, good]}
    (tmp_path / "peers.json").write_text(json.dumps(document))
    store = PeerStore.load(tmp_path)
    assert [record.peer_id for record in store.records()] == [BOB.peer_id]
    assert any("dropped an entry" in r.message and message in r.message for r in caplog.records)


def test_bad_multiaddrs_of_a_stored_peer_are_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored = [_POISON, "garbage", 5, IRENE_ADDR, "/ip4/1.2.3.4/tcp/1/p2p/" + BOB.peer_id]
    entry = {"peer_id": IRENE.peer_id, "multiaddrs": stored, "dial": True}
    (tmp_path / "peers.json").write_text(json.dumps({"version": 1, "peers": [entry]}))
    record = PeerStore.load(tmp_path).get(IRENE.peer_id)
    assert record is not None
    assert record.multiaddrs == (IRENE_ADDR,)
    assert record.dial
    assert sum("dropped an address" in r.message for r in caplog.records) == 4


def test_add_checks_multiaddrs_and_completes_the_peer_part(tmp_path: Path) -> None:
    store = PeerStore.load(tmp_path)
    record = store.add(IRENE.peer_id, [_POISON, "/ip4/127.0.0.1/tcp/4002", IRENE_ADDR], dial=True)
    assert record.multiaddrs == (IRENE_ADDR,)
    with pytest.raises(InvalidValueError, match="peer_id"):
        store.add("x" * 200, [], dial=False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage", "multiaddr"),
        ("/ip4/127.0.0.1/tcp/4001", "no /p2p/"),
        (
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
            "secp256k1",
        ),
    ],
)
def test_parse_peer_multiaddr_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        parse_peer_multiaddr(text)


def scnode_main(argv: list[str]) -> int:
    """The peers/connect subcommands as `scnode` runs them once registered."""
    parser = argparse.ArgumentParser(prog="scnode")
    _peers.register(parser.add_subparsers(dest="command"))
    namespace = parser.parse_args(argv)
    exit_code: int = namespace.handler(namespace)
    return exit_code


def test_cli_connect_then_peers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    home = NodeHome(tmp_path / "alice")
    home.initialise(node_key=ALICE.key)
    assert scnode_main(["peers", "--home", str(home.root)]) == 0
    assert "no known peers" in capsys.readouterr().out
    assert scnode_main(["connect", BOB_ADDR, "--home", str(home.root)]) == 0
    out = capsys.readouterr().out
    assert BOB.peer_id in out
    assert "next start" in out
    document = json.loads((home.p2p_path / "peers.json").read_text())
    assert document["peers"][0]["dial"] is True
    assert scnode_main(["peers", "--home", str(home.root)]) == 0
    table = capsys.readouterr().out
    assert BOB.address in table
    assert "never" in table


def test_cli_connect_refuses_a_bad_multiaddr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scnode_main(["connect", "/ip4/1.2.3.4/tcp/1", "--home", str(tmp_path)]) == 1
    assert "no /p2p/" in capsys.readouterr().out


def test_saves_at_the_same_time_leave_one_whole_document(tmp_path: Path) -> None:
    """A save in a worker thread may still run when the node saves again as it stops."""
    store = PeerStore.load(tmp_path)
    for actor in ACTORS:
        store.add(actor.peer_id, [f"/ip4/127.0.0.1/tcp/{4000 + len(actor.name)}"], dial=True)
    threads = [threading.Thread(target=store.save) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.peer_id for r in PeerStore.load(tmp_path).records()] == [
        r.peer_id for r in store.records()
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["peers.json"]  # no temporary left
