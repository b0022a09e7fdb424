"""End to end: nodes in separate processes over libp2p and anvil; SIGKILL and restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.chain import ChainClient, devnet_node_key
from node.log import EventLog
from tests.engine.engine_processes import (
    NodeProcess,
    cli,
    deposited_events,
    init_home,
    objective_status,
    read_json,
    start_node,
    wait_done,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ETH = 10**18
NATIVE = "0x" + "0" * 40


def chain_client(devnet: Path) -> ChainClient:
    import json

    data = json.loads((devnet / "devnet.json").read_text())
    return ChainClient(data["rpc_url"], devnet_node_key(0), data["adjudicator"])


def pair(tmp_path: Path, devnet: Path) -> tuple[NodeProcess, NodeProcess]:
    alice = start_node("alice", init_home(tmp_path, "alice", 0), devnet)
    bob = start_node("bob", init_home(tmp_path, "bob", 1), devnet, peers=(alice.multiaddr,))
    return alice, bob


def stop_all(*nodes: NodeProcess) -> None:
    for node in nodes:
        assert node.stop() == 0, node.errors()[-3000:]
        with EventLog.open(node.home / "log", read_only=True) as log:
            assert log.verify().ok
        assert "Traceback" not in node.errors()


def test_open_and_close_with_the_cli(tmp_path: Path, devnet: Path) -> None:
    alice, bob = pair(tmp_path, devnet)
    client = chain_client(devnet)
    try:
        opened = cli(
            "ledger", "open", "--home", str(alice.home), "--counterparty", bob.address,
            "--amount", "2eth", "--counterparty-amount", "1eth", "--json",
        )  # fmt: skip
        assert opened.returncode == 0, opened.stderr
        result = read_json(opened.stdout)
        assert result["objective"]["status"] == "DONE"
        channel = result["channel"]["id"]
        views = [node.call("get_ledger_channel", channel_id=channel) for node in (alice, bob)]
        assert [view["status"] for view in views] == ["OPEN", "OPEN"]
        assert (
            views[0]["holdings"]
            == views[1]["holdings"]
            == [{"asset": NATIVE, "amount": str(3 * ETH)}]
        )
        assert views[0]["balances"][0]["me"] == views[1]["balances"][0]["them"] == str(2 * ETH)
        listed = cli("ledger", "list", "--home", str(bob.home))
        assert listed.returncode == 0, listed.stderr
        assert "OPEN" in listed.stdout

        before = [client.balance(node.address) for node in (alice, bob)]
        closed = cli("ledger", "close", "--home", str(bob.home), "--channel", channel, "--json")
        assert closed.returncode == 0, closed.stderr
        assert read_json(closed.stdout)["channel"]["status"] == "DEFUNDED"
        wait_done(alice, read_json(closed.stdout)["objective"]["id"])
        after = [client.balance(node.address) for node in (alice, bob)]
        assert after[1] - before[1] == 1 * ETH  # Bob sends no transaction to close
        assert 2 * ETH - ETH // 100 < after[0] - before[0] < 2 * ETH  # Alice pays the gas
        assert client.holdings(NATIVE, bytes.fromhex(channel[2:])) == 0
        info = alice.call("get_node_info")
        assert info["peer_id"] in alice.multiaddr
        assert len(info["module"]["sha256"]) == 64
    finally:
        stop_all(alice, bob)


@pytest.mark.parametrize("moment", ["prefund", "deposited"])
def test_sigkill_during_funding(tmp_path: Path, devnet: Path, moment: str) -> None:
    alice, bob = pair(tmp_path, devnet)
    client = chain_client(devnet)
    created = alice.call(
        "create_ledger_channel", counterparty=bob.address, amount=str(ETH), counterparty_amount="5"
    )
    objective_id, channel = created["objective_id"], bytes.fromhex(created["channel_id"][2:])
    if moment == "prefund":
        wait_for("bob to know the objective", lambda: objective_status(bob, objective_id))
    else:
        wait_for("bob's deposit", lambda: client.holdings(NATIVE, channel) == ETH + 5 or None)
    bob.kill()
    bob = start_node("bob", bob.home, devnet, peers=(alice.multiaddr,), port=bob.port)
    try:
        for node in (alice, bob):
            wait_done(node, objective_id)
        assert client.holdings(NATIVE, channel) == ETH + 5
        assert deposited_events(client, channel) == 2
    finally:
        stop_all(alice, bob)


def test_sigkill_during_defunding(tmp_path: Path, devnet: Path) -> None:
    alice, bob = pair(tmp_path, devnet)
    client = chain_client(devnet)
    created = alice.call("create_ledger_channel", counterparty=bob.address, amount="9")
    wait_done(bob, created["objective_id"])
    closing = bob.call("close_ledger_channel", channel_id=created["channel_id"])
    wait_for("alice to take the close", lambda: objective_status(alice, closing["objective_id"]))
    alice.kill()  # Alice is participant 0: she submits the conclusion
    alice = start_node("alice", alice.home, devnet, port=alice.port)
    try:
        for node in (alice, bob):
            wait_done(node, closing["objective_id"])
        channel = bytes.fromhex(created["channel_id"][2:])
        assert client.holdings(NATIVE, channel) == 0
        with EventLog.open(alice.home / "log", read_only=True) as log:
            concluded = [
                r.submitted_transaction
                for r in log.read()
                if r.WhichOneof("payload") == "submitted_transaction"
                and r.submitted_transaction.tx_kind == 2
                and not r.submitted_transaction.mined
            ]
        assert (
            len([tx for tx in concluded if not tx.failed])
            - len([tx for tx in concluded if tx.failed])
            <= 1
        )
    finally:
        stop_all(alice, bob)
