"""End to end: Alice's node hands her channels to a watchtower (``scnode run
--watchtower``, ``--use-watchtower``) and goes offline; Bob challenges their ledger with
a stale state; the tower checkpoints; Alice comes back and leaves with what the latest
state gives her, to the wei (separate ``scnode run`` processes, libp2p, a devnet)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.chain import (
    ChainClient,
    devnet_down,
    devnet_node_key,
    devnet_up,
    read_devnet,
)
from node.log import EventLog
from node.testing import challenge_with_old_state
from tests.engine.engine_processes import (
    NodeProcess,
    cli,
    init_home,
    start_node,
    wait_done,
    wait_for,
)
from tests.engine.test_engine_dispute_processes import gas_paid, open_ledger

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CHALLENGE_S = 20
DEPOSIT = 10**15
BOB_DEPOSIT = 3 * 10**14
FUNDS = 10**9
PAYMENTS = (100, 250, 7)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("devnet")
    devnet_up(directory, nodes=3)
    yield directory
    devnet_down(directory)


def held_turn(tower: NodeProcess, channel: str, client: str) -> int | None:
    from node.rpc import RpcError

    try:
        watched = tower.call("get_watched_channel", channel_id=channel)
    except RpcError:
        return None
    turns = [c["supported_turn_num"] for c in watched["clients"] if c["client"] == client]
    return turns[0] if turns else None


def guarded(tower: NodeProcess, channel: str) -> bool | None:
    """Whether the tower's guard of ``channel`` is done (None: not yet, or not started)."""
    from node.rpc import RpcError

    try:
        info = tower.call("get_objective", objective_id=f"Guarding-{channel}")
    except RpcError:
        return None
    assert info["status"] != "FAILED", info
    return info["status"] == "DONE" or None


def ledger_settle(node: NodeProcess, channel: str, *flags: str) -> dict[str, Any]:
    done = cli("ledger", "settle", "--home", str(node.home), "--channel", channel, "--json", *flags)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_watchtower_defends_a_ledger_while_its_client_is_offline(
    tmp_path: Path, devnet: Path
) -> None:
    tower = start_node("tower", init_home(tmp_path, "tower", 2), devnet, options=("--watchtower",))
    alice_home = init_home(tmp_path, "alice", 0)
    options = ("--use-watchtower", tower.multiaddr)
    alice = start_node("alice", alice_home, devnet, options=options)
    bob = start_node("bob", init_home(tmp_path, "bob", 1), devnet, peers=(alice.multiaddr,))
    data = read_devnet(devnet)
    client = ChainClient(data.rpc_url, devnet_node_key(0), data.adjudicator)
    try:
        assert alice.call("get_watchtower")["towers"] == [tower.address]
        ledger = open_ledger(alice, bob, DEPOSIT, BOB_DEPOSIT)
        created = alice.call(
            "create_payment_channel",
            counterparty=bob.address,
            amount=str(FUNDS),
            intermediaries=[],
            challenge_duration=CHALLENGE_S,
        )
        channel = str(created["channel_id"])
        for node in (alice, bob):
            wait_done(node, created["objective_id"])
        for amount in PAYMENTS:
            alice.call("pay", channel_id=channel, amount=str(amount))
        closed = alice.call("close_payment_channel", channel_id=channel)
        for node in (alice, bob):
            wait_done(node, closed["objective_id"])
        latest = alice.call("get_ledger_channel", channel_id=ledger)["supported_turn_num"]
        assert latest > 1
        wait_for("the tower", lambda: held_turn(tower, ledger, alice.address) == latest or None)
        assert alice.stop() == 0
        assert bob.stop() == 0

        # Bob, his node stopped, challenges with the postfund (before Alice paid him).
        challenge_with_old_state(bob.home, devnet, bytes.fromhex(ledger[2:]))
        wait_for("the tower's answer", lambda: guarded(tower, ledger))
        status = client.status(bytes.fromhex(ledger[2:]))
        assert (status.turn_num_record, status.finalizes_at) == (latest, 0)

        # Alice is back: she leaves with what the latest state gives her, to the wei.
        alice = start_node("alice", alice_home, devnet, options=options, port=alice.port)
        chain_key = alice.call("get_node_info")["chain"]["chain_key_address"]
        bobs = client.balance(bob.address)
        before, first_block = client.balance(chain_key), client.block_number()
        assert ledger_settle(alice, ledger)["stage"] == "CHALLENGED"
        client.rpc("time", "evm_increaseTime", CHALLENGE_S + 1)
        client.rpc("mine", "evm_mine")
        settled = ledger_settle(alice, ledger, "--wait")
        paid = sum(PAYMENTS)
        assert settled["stage"] == "SETTLED"
        assert settled["payout"] == str(DEPOSIT - paid)
        gas = gas_paid(client, chain_key, range(first_block + 1, client.block_number() + 1))
        assert client.balance(chain_key) - before == DEPOSIT - paid - gas
        assert client.balance(bob.address) - bobs == BOB_DEPOSIT + paid  # his, to him
        assert client.holdings("0x" + "00" * 20, bytes.fromhex(ledger[2:])) == 0
    finally:
        for node in (alice, bob, tower):
            if node.process.poll() is None:
                node.stop()
    for node in (alice, tower):
        with EventLog.open(node.home / "log", read_only=True) as log:
            assert log.verify().ok
        assert "Traceback" not in node.errors()
