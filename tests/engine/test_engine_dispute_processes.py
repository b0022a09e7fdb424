"""End to end: the payer's process is SIGKILLed for good, and the payee settles on chain
with its last voucher over JSON-RPC (``scnode run`` processes, libp2p, a devnet)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.chain import ChainClient, devnet_down, devnet_node_key, devnet_up, read_devnet
from node.log import EventLog
from node.rpc import RpcError
from tests.engine.engine_processes import (
    NodeProcess,
    cli,
    init_home,
    start_node,
    wait_done,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CHALLENGE_S = 20  # of the ledgers and the payment channel
DEPOSIT = 10**15  # each ledger's leader, in wei
BOB_DEPOSIT = 3 * 10**14  # Bob's own share of his ledger with Irene
FUNDS = 10**9  # what Alice locks in the payment channel
PAYMENTS = (100, 250, 7, 1_000, 43)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("devnet")
    devnet_up(directory, nodes=3)
    yield directory
    devnet_down(directory)


def open_ledger(leader: NodeProcess, follower: NodeProcess, amount: int, theirs: int = 0) -> str:
    created = leader.call(
        "create_ledger_channel",
        counterparty=follower.address,
        amount=str(amount),
        counterparty_amount=str(theirs),
        challenge_duration=CHALLENGE_S,
    )
    for node in (leader, follower):
        wait_done(node, created["objective_id"])
    return str(created["channel_id"])


def gas_paid(client: ChainClient, sender: str, blocks: range) -> int:
    """Wei ``sender`` paid for gas in ``blocks``."""
    total = 0
    for number in blocks:
        for tx in client.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if str(tx["from"]).lower() == sender.lower():  # type: ignore[index]
                receipt = client.w3.eth.get_transaction_receipt(tx["hash"])  # type: ignore[index]
                total += receipt["gasUsed"] * receipt["effectiveGasPrice"]
    return total


def settle(bob: NodeProcess, channel: str) -> dict[str, Any]:
    return dict(bob.call("settle_payment_channel", channel_id=channel))


def settle_with_the_cli(bob: NodeProcess, channel: str, *flags: str) -> dict[str, Any]:
    done = cli("channel", "settle", "--home", str(bob.home), "--channel", channel, *flags)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_payee_settles_on_chain_after_the_payer_is_killed(tmp_path: Path, devnet: Path) -> None:
    irene = start_node("irene", init_home(tmp_path, "irene", 1), devnet)
    alice = start_node("alice", init_home(tmp_path, "alice", 0), devnet, peers=(irene.multiaddr,))
    bob = start_node("bob", init_home(tmp_path, "bob", 2), devnet, peers=(irene.multiaddr,))
    data = read_devnet(devnet)
    client = ChainClient(data.rpc_url, devnet_node_key(0), data.adjudicator)
    try:
        open_ledger(alice, irene, DEPOSIT)
        right = open_ledger(irene, bob, DEPOSIT, BOB_DEPOSIT)
        created = alice.call(
            "create_payment_channel",
            counterparty=bob.address,
            amount=str(FUNDS),
            intermediaries=[irene.address],
            challenge_duration=CHALLENGE_S,
        )
        channel = created["channel_id"]
        for node in (alice, irene, bob):
            wait_done(node, created["objective_id"])
        wait_for("the channel to open", lambda: opened(alice, channel))
        for amount in PAYMENTS:
            alice.call("pay", channel_id=channel, amount=str(amount))
        paid = sum(PAYMENTS)
        wait_for("Bob's vouchers", lambda: received(bob, channel) == paid or None)
        alice.kill()  # never restarted

        with pytest.raises(RpcError, match="no payment channel"):
            bob.call("settle_payment_channel", channel_id="0x" + "07" * 32)
        chain_key = bob.call("get_node_info")["chain"]["chain_key_address"]
        before, first_block = client.balance(chain_key), client.block_number()
        first = settle_with_the_cli(bob, channel, "--json")
        assert first["stage"] == "CHALLENGED"
        assert first["submitted"] == sorted([f"CHALLENGE:{channel}", f"CHALLENGE:{right}"])
        assert first["ledger_id"] == right
        assert first["payout"] is None
        client.rpc("time", "evm_increaseTime", CHALLENGE_S + 1)
        client.rpc("mine", "evm_mine")
        second = settle_with_the_cli(bob, channel, "--json", "--wait")
        assert second["stage"] == "SETTLED"
        # Bob's two challenges; the reclaim and the payout are Bob's or Irene's, whoever
        # is first (Irene settles her ledgers by herself once V is challenged).
        assert {str(s).split(":")[0] for s in second["submitted"]} >= {"CHALLENGE"}
        assert (second["paid"], second["payout"]) == (str(paid), str(BOB_DEPOSIT + paid))
        assert settle(bob, channel) == second  # asked again: where it stands
        gas = gas_paid(client, chain_key, range(first_block + 1, client.block_number() + 1))
        assert client.balance(chain_key) - before == BOB_DEPOSIT + paid - gas
        assert client.holdings("0x" + "00" * 20, bytes.fromhex(right[2:])) == 0
    finally:
        for node in (alice, irene, bob):
            if node.process.poll() is None:
                node.stop()
    for node in (irene, bob):
        with EventLog.open(node.home / "log", read_only=True) as log:
            assert log.verify().ok
        assert "Traceback" not in node.errors()


def opened(node: NodeProcess, channel: str) -> bool | None:
    return node.call("get_payment_channel", channel_id=channel)["status"] == "OPEN" or None


def received(node: NodeProcess, channel: str) -> int:
    return int(node.call("get_payment_channel", channel_id=channel)["received"])


@pytest.mark.parametrize("moment", ["challenges sent", "challenges registered"])
def test_payee_killed_mid_settlement_finishes_it_after_a_restart(
    tmp_path: Path, devnet: Path, moment: str
) -> None:
    irene = start_node("irene", init_home(tmp_path, "irene", 1), devnet)
    alice = start_node("alice", init_home(tmp_path, "alice", 0), devnet, peers=(irene.multiaddr,))
    bob = start_node("bob", init_home(tmp_path, "bob", 2), devnet, peers=(irene.multiaddr,))
    data = read_devnet(devnet)
    client = ChainClient(data.rpc_url, devnet_node_key(0), data.adjudicator)
    try:
        open_ledger(alice, irene, DEPOSIT)
        right = open_ledger(irene, bob, DEPOSIT, BOB_DEPOSIT)
        channel = open_and_pay(alice, irene, bob)
        paid = sum(PAYMENTS)
        alice.kill()
        chain_key = bob.call("get_node_info")["chain"]["chain_key_address"]
        before, first_block = client.balance(chain_key), client.block_number()
        settle(bob, channel)
        if moment == "challenges registered":
            wait_for(
                "the challenges", lambda: settle(bob, channel)["stage"] == "CHALLENGED" or None
            )
        bob.kill()
        bob = start_node("bob", bob.home, devnet, peers=(irene.multiaddr,), port=bob.port)
        wait_for("the challenges", lambda: settle(bob, channel)["stage"] == "CHALLENGED" or None)
        client.rpc("time", "evm_increaseTime", CHALLENGE_S + 1)
        client.rpc("mine", "evm_mine")
        settled = wait_for(
            "the payout", lambda: ((s := settle(bob, channel))["stage"] == "SETTLED" and s) or None
        )
        assert (settled["paid"], settled["payout"]) == (str(paid), str(BOB_DEPOSIT + paid))
        gas = gas_paid(client, chain_key, range(first_block + 1, client.block_number() + 1))
        assert client.balance(chain_key) - before == BOB_DEPOSIT + paid - gas
        assert client.holdings("0x" + "00" * 20, bytes.fromhex(right[2:])) == 0
    finally:
        for node in (alice, irene, bob):
            if node.process.poll() is None:
                node.stop()
    with EventLog.open(bob.home / "log", read_only=True) as log:
        assert log.verify().ok
    assert "Traceback" not in bob.errors()


def open_and_pay(alice: NodeProcess, irene: NodeProcess, bob: NodeProcess) -> str:
    """A payment channel Alice -> Irene -> Bob, paid PAYMENTS; its id once Bob holds them."""
    created = alice.call(
        "create_payment_channel",
        counterparty=bob.address,
        amount=str(FUNDS),
        intermediaries=[irene.address],
        challenge_duration=CHALLENGE_S,
    )
    channel = str(created["channel_id"])
    for node in (alice, irene, bob):
        wait_done(node, created["objective_id"])
    wait_for("the channel to open", lambda: opened(alice, channel))
    for amount in PAYMENTS:
        alice.call("pay", channel_id=channel, amount=str(amount))
    wait_for("Bob's vouchers", lambda: received(bob, channel) == sum(PAYMENTS) or None)
    return channel
