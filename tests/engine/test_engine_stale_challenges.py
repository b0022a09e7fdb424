"""End to end: a participant challenges on chain with an old state it once signed (taken
from its stopped node's log by node.testing's cheat), and the honest nodes answer by
themselves: a ledger is checkpointed with its latest supported state, a payment channel is
counter-challenged with the payee's largest voucher. Separate ``scnode run`` processes on
a devnet; amounts and gas are checked to the wei. Last, a channel proposed with a
challenge duration outside a node's bounds (0 s, or above its maximum) is refused, with
the reason, at both ends (engines on anvil)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from node.chain import ChainClient, devnet_down, devnet_node_key, devnet_up, read_devnet
from node.core import constants
from node.log import EventLog
from node.proto import log_pb2
from node.rpc import RpcError
from node.testing import POSTFUND_TURN_NUM, StaleChallenge, challenge_with_old_state
from tests.actors import ALICE as ALICE_SIGNER
from tests.actors import BOB as BOB_SIGNER
from tests.engine.engine_processes import (
    NodeProcess,
    cli,
    init_home,
    start_node,
    wait_done,
    wait_for,
)
from tests.engine.engine_support import Party, Setting, start_parties
from tests.engine.test_engine_dispute_processes import gas_paid

pytestmark = [pytest.mark.slow, pytest.mark.integration]
CHALLENGE_S = 60  # every channel's: long enough for a node to restart within it
NATIVE = "0x" + "00" * 20
LEDGER_DEPOSIT = 5  # wei, each side of Alice's ledger with Irene in the ledger tests
PAID = 3  # what Alice pays Irene on a payment channel over their ledger
VIRTUAL_DEPOSIT = 10  # each ledger's leader's, in the payment channel test
BOB_DEPOSIT = 3  # Bob's own share of his ledger with Irene
FUNDS = 5  # what Alice locks in the payment channel to Bob through Irene
PAYMENTS = (1, 2)
PAID_VIRTUAL = sum(PAYMENTS)
ALICE_INDEX, IRENE_INDEX, BOB_INDEX = 0, 1, 2  # devnet accounts


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("devnet")
    devnet_up(directory, nodes=3)
    yield directory
    devnet_down(directory)


@pytest.fixture
def chain(devnet: Path) -> ChainClient:
    """A client that reads the chain and moves its time (it sends nothing)."""
    data = read_devnet(devnet)
    return ChainClient(data.rpc_url, devnet_node_key(ALICE_INDEX), data.adjudicator)


def channel_bytes(channel: str) -> bytes:
    return bytes.fromhex(channel.removeprefix("0x"))


def open_ledger(leader: NodeProcess, follower: NodeProcess, amount: int, theirs: int) -> str:
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


def ledger(node: NodeProcess, channel: str) -> dict[str, Any]:
    return dict(node.call("get_ledger_channel", channel_id=channel))


def pay_over_the_ledger(alice: NodeProcess, irene: NodeProcess) -> None:
    """Alice opens a payment channel to Irene funded by their ledger, pays her PAID in
    two vouchers and closes it: the ledger's latest state moves PAID to Irene."""
    created = alice.call(
        "create_payment_channel",
        counterparty=irene.address,
        amount=str(PAID),
        intermediaries=[],
        challenge_duration=CHALLENGE_S,
    )
    channel = str(created["channel_id"])
    for node in (alice, irene):
        wait_done(node, created["objective_id"])
    wait_for("the channel to open", lambda: status_is(alice, channel, "OPEN"))
    alice.call("pay", channel_id=channel, amount="1")
    alice.call("pay", channel_id=channel, amount=str(PAID - 1))
    wait_for("Irene's vouchers", lambda: received(irene, channel) == PAID or None)
    closed = alice.call("close_payment_channel", channel_id=channel)
    for node in (alice, irene):
        wait_done(node, closed["objective_id"])


def status_is(node: NodeProcess, channel: str, status: str) -> bool | None:
    return node.call("get_payment_channel", channel_id=channel)["status"] == status or None


def received(node: NodeProcess, channel: str) -> int:
    return int(node.call("get_payment_channel", channel_id=channel)["received"])


def transaction_kinds(home: Path) -> list[tuple[str, str, str]]:
    """``(kind, objective kind, channel id)`` of each transaction a stopped node's log shows
    as sent and not refused, in the order sent."""
    sent: list[tuple[bytes, tuple[str, str, str]]] = []
    refused: set[bytes] = set()
    with EventLog.open(home / "log", read_only=True) as log:
        for record in log.read():
            if record.WhichOneof("payload") != "submitted_transaction":
                continue
            tx = record.submitted_transaction
            if tx.failed:
                refused.add(tx.tx_hash)
                continue
            if tx.mined:
                continue  # the same transaction, mined
            kind = log_pb2.TransactionKind.Name(tx.tx_kind).removeprefix("TRANSACTION_KIND_")
            objective = tx.objective_id.split("-")[0]
            sent.append((tx.tx_hash, (kind, objective, "0x" + tx.channel_id.hex())))
    return [what for tx_hash, what in sent if tx_hash not in refused]


def check_logs_and_errors(*nodes: NodeProcess) -> None:
    for node in nodes:
        with EventLog.open(node.home / "log", read_only=True) as log:
            assert log.verify().ok, node.name
        assert "Traceback" not in node.errors(), node.name


def stop_all(*nodes: NodeProcess) -> None:
    for node in nodes:
        if node.process.poll() is None:
            node.stop()


def refused_durations(alice: NodeProcess, irene: NodeProcess) -> None:
    """Alice's node refuses to propose a channel whose challenge duration is outside the
    bounds it runs with (on a devnet 10 s .. 1 day), saying so."""
    for seconds in (0, 86_401):
        with pytest.raises(RpcError, match=f"challenge duration {seconds} s is outside the"):
            alice.call(
                "create_ledger_channel",
                counterparty=irene.address,
                amount="1",
                challenge_duration=seconds,
            )


def chain_key(node: NodeProcess) -> str:
    return str(node.call("get_node_info")["chain"]["chain_key_address"])


def defended(
    irene: NodeProcess, chain: ChainClient, ledger_id: str, stale: StaleChallenge, latest: int
) -> int:
    """Irene's node checkpointed the ledger by itself: its Defend objective is done, the
    chain shows the challenge cleared with the latest turn, her view shows no dispute.
    Returns the block the checkpoint was mined in."""
    channel = channel_bytes(ledger_id)
    wait_done(irene, f"Defending-{ledger_id}", timeout_s=CHALLENGE_S / 2)
    status = chain.status(channel)
    assert (status.finalizes_at, status.turn_num_record) == (0, latest)
    cleared = cleared_events(chain, channel, stale.tx.block_number)
    assert [turn for turn, _ in cleared] == [latest]
    view = wait_for(
        "Irene's view without the dispute",
        lambda: ((v := ledger(irene, ledger_id))["dispute"] is None and v) or None,
    )
    assert (view["status"], view["supported_turn_num"]) == ("OPEN", latest)
    return cleared[0][1]


def cleared_events(chain: ChainClient, channel: bytes, from_block: int) -> list[tuple[int, int]]:
    """``(new turn-number record, block)`` of each ChallengeCleared event of ``channel``."""
    adjudicator = chain.require_adjudicator()
    logs = adjudicator.events.ChallengeCleared().get_logs(from_block=from_block)
    return [
        (int(log["args"]["newTurnNumRecord"]), int(log["blockNumber"]))
        for log in logs
        if bytes(log["args"]["channelId"]) == channel
    ]


def registered_turns(chain: ChainClient, channel: bytes, from_block: int) -> list[int]:
    """The candidate turn of each ChallengeRegistered event of ``channel``, in order."""
    adjudicator = chain.require_adjudicator()
    logs = adjudicator.events.ChallengeRegistered().get_logs(from_block=from_block)
    return [
        int(log["args"]["candidate"]["variablePart"]["turnNum"])
        for log in logs
        if bytes(log["args"]["channelId"]) == channel
    ]


def exit_with_the_cli(irene: NodeProcess, chain: ChainClient, ledger_id: str) -> dict[str, Any]:
    """``scnode ledger settle``: challenged; time passes; ``--wait``: settled."""
    home = ("--home", str(irene.home), "--channel", ledger_id, "--json")
    first = cli("ledger", "settle", *home)
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)
    assert (started["stage"], started["payout"]) == ("CHALLENGED", None)
    assert started["submitted"] == [f"CHALLENGE:{ledger_id}"]
    assert int(started["finalizes_at"]) > int(started["chain_time"])
    chain.rpc("time", "evm_increaseTime", CHALLENGE_S + 1)
    chain.rpc("mine", "evm_mine")
    second = cli("ledger", "settle", *home, "--wait", "--timeout", "60")
    assert second.returncode == 0, second.stderr
    settled: dict[str, Any] = json.loads(second.stdout)
    assert settled["stage"] == "SETTLED"
    assert settled["submitted"] == [f"CHALLENGE:{ledger_id}", f"TRANSFER:{ledger_id}"]
    return settled


def test_a_stale_ledger_challenge_is_checkpointed_and_the_ledger_settles(
    tmp_path: Path, devnet: Path, chain: ChainClient
) -> None:
    stale_ledger_scenario(tmp_path, devnet, chain, restart=False)


def test_a_node_killed_as_it_is_challenged_defends_after_a_restart(
    tmp_path: Path, devnet: Path, chain: ChainClient
) -> None:
    stale_ledger_scenario(tmp_path, devnet, chain, restart=True)


def stale_ledger_scenario(
    tmp_path: Path, devnet: Path, chain: ChainClient, *, restart: bool
) -> None:
    """Alice and Irene fund a ledger 5/5; Alice pays Irene 3 over it and stops; the
    cheat challenges with the postfund (5/5). Irene's node checkpoints the latest state
    (2/8) by itself (with ``restart``: after being SIGKILLed as the challenge is mined,
    before it could see it), then leaves with ``scnode ledger settle`` and gets 8."""
    irene = start_node("irene", init_home(tmp_path, "irene", IRENE_INDEX), devnet)
    alice = start_node(
        "alice", init_home(tmp_path, "alice", ALICE_INDEX), devnet, peers=(irene.multiaddr,)
    )
    keys = {"alice": chain_key(alice), "irene": chain_key(irene)}
    start = {name: chain.balance(key) for name, key in keys.items()}
    first_block = chain.block_number()
    try:
        refused_durations(alice, irene)
        ledger_id = open_ledger(alice, irene, LEDGER_DEPOSIT, LEDGER_DEPOSIT)
        pay_over_the_ledger(alice, irene)
        latest = ledger(irene, ledger_id)
        assert [latest["balances"][0][side] for side in ("me", "them")] == [
            str(LEDGER_DEPOSIT + PAID),
            str(LEDGER_DEPOSIT - PAID),
        ]
        alice.stop()

        if restart:
            irene.process.send_signal(signal.SIGSTOP)  # it sees nothing from now on
        stale = challenge_with_old_state(alice.home, devnet, channel_bytes(ledger_id))
        assert stale.candidate.state.turn_num == POSTFUND_TURN_NUM
        amounts = [a.amount for a in stale.candidate.state.outcome[0].allocations]
        assert amounts == [LEDGER_DEPOSIT, LEDGER_DEPOSIT]
        assert registered_turns(chain, channel_bytes(ledger_id), first_block) == [1]
        if restart:
            irene.kill()
            assert chain.status(channel_bytes(ledger_id)).finalizes_at == stale.finalizes_at
            irene = start_node("irene", irene.home, devnet, port=irene.port)
        checkpoint_block = defended(irene, chain, ledger_id, stale, latest["supported_turn_num"])
        mined_at = int(chain.w3.eth.get_block(checkpoint_block)["timestamp"])
        assert mined_at < stale.finalizes_at  # in time: the challenge had not expired

        at_exit = {name: chain.balance(key) for name, key in keys.items()}
        exit_block = chain.block_number()
        settled = exit_with_the_cli(irene, chain, ledger_id)
        assert (settled["paid"], settled["payout"]) == (None, str(LEDGER_DEPOSIT + PAID))
        assert chain.holdings(NATIVE, channel_bytes(ledger_id)) == 0
        last_block = chain.block_number()
    finally:
        stop_all(alice, irene)
    # The exit pays the latest state: Irene 8, Alice 2 (Alice's node paid no gas since).
    exit_gas = gas_paid(chain, keys["irene"], range(exit_block + 1, last_block + 1))
    assert chain.balance(keys["irene"]) - at_exit["irene"] == LEDGER_DEPOSIT + PAID - exit_gas
    assert chain.balance(keys["alice"]) - at_exit["alice"] == LEDGER_DEPOSIT - PAID
    # From the start: Alice paid Irene 3, and each paid its gas (Alice's cheat included).
    blocks = range(first_block + 1, last_block + 1)
    moved = {"alice": -PAID, "irene": PAID}
    for name, key in keys.items():
        assert chain.balance(key) - start[name] == moved[name] - gas_paid(chain, key, blocks)
    assert transaction_kinds(irene.home) == [
        ("DEPOSIT", "DirectFunding", ledger_id),
        ("CHECKPOINT", "Defending", ledger_id),
        ("CHALLENGE", "Settling", ledger_id),
        ("TRANSFER", "Settling", ledger_id),
    ]
    assert transaction_kinds(alice.home) == [("DEPOSIT", "DirectFunding", ledger_id)]
    check_logs_and_errors(alice, irene)


def test_a_stale_payment_channel_challenge_is_answered_with_the_largest_voucher(
    tmp_path: Path, devnet: Path, chain: ChainClient
) -> None:
    """Alice pays Bob 3 through Irene and is killed; the cheat challenges the payment
    channel with its postfund (Alice keeps all 5). Bob's node counter-challenges with the
    redemption state carrying his voucher of 3, and settles his ledger; Irene's node
    settles both of hers; once time passes everyone has what the payments say."""
    irene = start_node("irene", init_home(tmp_path, "irene", IRENE_INDEX), devnet)
    alice = start_node(
        "alice", init_home(tmp_path, "alice", ALICE_INDEX), devnet, peers=(irene.multiaddr,)
    )
    bob = start_node("bob", init_home(tmp_path, "bob", BOB_INDEX), devnet, peers=(irene.multiaddr,))
    nodes = {"alice": alice, "irene": irene, "bob": bob}
    keys = {name: chain_key(node) for name, node in nodes.items()}
    start = {name: chain.balance(key) for name, key in keys.items()}
    first_block = chain.block_number()
    try:
        left = open_ledger(alice, irene, VIRTUAL_DEPOSIT, 0)
        right = open_ledger(irene, bob, VIRTUAL_DEPOSIT, BOB_DEPOSIT)
        channel = open_and_pay(alice, irene, bob)
        alice.kill()

        stale = challenge_with_old_state(alice.home, devnet, channel_bytes(channel))
        assert stale.candidate.state.turn_num == POSTFUND_TURN_NUM
        amounts = [a.amount for a in stale.candidate.state.outcome[0].allocations]
        assert amounts == [FUNDS, 0]  # no voucher: Alice would keep everything
        wait_for(
            "every settlement to wait out its challenges",
            lambda: challenged(bob, irene, left, right),
        )
        # Bob's answer: the redemption state (turn 2) with his largest voucher, from his key.
        registered = registered_challenges(chain, channel_bytes(channel), first_block)
        assert registered == [
            (POSTFUND_TURN_NUM, keys["alice"], [FUNDS, 0]),
            (2, keys["bob"], [FUNDS - PAID_VIRTUAL, PAID_VIRTUAL]),
        ]
        assert chain.status(channel_bytes(channel)).turn_num_record == 2
        chain.rpc("time", "evm_increaseTime", CHALLENGE_S + 1)
        chain.rpc("mine", "evm_mine")
        payouts = {}
        for node, ledger_id in ((bob, right), (irene, left), (irene, right)):
            settlement = wait_done(node, f"Settling-{ledger_id}")["settlement"]
            payouts[node.name, ledger_id] = (settlement["paid"], settlement["payout"])
        # What each is paid out of each ledger: Bob his 3 and the 3 paid; Irene 3 of
        # Alice's (left) and the 5 she locked less the 3 she paid on, plus 5 (right).
        paid = str(PAID_VIRTUAL)
        assert payouts == {
            ("bob", right): (paid, str(BOB_DEPOSIT + PAID_VIRTUAL)),
            ("irene", left): (paid, str(PAID_VIRTUAL)),
            ("irene", right): (paid, str(VIRTUAL_DEPOSIT - PAID_VIRTUAL)),
        }
        for ledger_id in (left, right, channel):
            assert chain.holdings(NATIVE, channel_bytes(ledger_id)) == 0
        last_block = chain.block_number()
    finally:
        stop_all(alice, irene, bob)
    blocks = range(first_block + 1, last_block + 1)
    moved = {"alice": -PAID_VIRTUAL, "irene": 0, "bob": PAID_VIRTUAL}
    for name, key in keys.items():
        assert chain.balance(key) - start[name] == moved[name] - gas_paid(chain, key, blocks)
    check_virtual_transactions(alice, irene, bob, (left, right, channel))
    check_logs_and_errors(alice, irene, bob)


def open_and_pay(alice: NodeProcess, irene: NodeProcess, bob: NodeProcess) -> str:
    """A payment channel Alice -> Irene -> Bob of FUNDS, paid PAYMENTS; its id once Bob
    holds the vouchers."""
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
    wait_for("the channel to open", lambda: status_is(alice, channel, "OPEN"))
    for amount in PAYMENTS:
        alice.call("pay", channel_id=channel, amount=str(amount))
    wait_for("Bob's vouchers", lambda: received(bob, channel) == PAID_VIRTUAL or None)
    return channel


def challenged(bob: NodeProcess, irene: NodeProcess, left: str, right: str) -> bool | None:
    """Whether Bob's settlement of his ledger and Irene's of both of hers, which their
    nodes started by themselves, all wait for their challenges to finalize."""
    stages = [
        settlement_stage(bob, right),
        settlement_stage(irene, left),
        settlement_stage(irene, right),
    ]
    return all(stage == "FINALIZATION" for stage in stages) or None


def settlement_stage(node: NodeProcess, ledger_id: str) -> str | None:
    """The pause point of the node's settlement of ``ledger_id`` (None: none yet)."""
    try:
        info = node.call("get_objective", objective_id=f"Settling-{ledger_id}")
    except RpcError as error:
        if "no objective" in str(error):
            return None
        raise
    assert info["status"] != "FAILED", info["failure"]
    return str(info["waiting_for"])


def registered_challenges(
    chain: ChainClient, channel: bytes, from_block: int
) -> list[tuple[int, str, list[int]]]:
    """``(candidate turn, sender, outcome amounts)`` of each ChallengeRegistered event of
    ``channel``, in order."""
    adjudicator = chain.require_adjudicator()
    found = []
    for log in adjudicator.events.ChallengeRegistered().get_logs(from_block=from_block):
        if bytes(log["args"]["channelId"]) != channel:
            continue
        variable = log["args"]["candidate"]["variablePart"]
        (asset_exit,) = variable["outcome"]
        amounts = [int(allocation["amount"]) for allocation in asset_exit["allocations"]]
        sender = chain.w3.eth.get_transaction(log["transactionHash"])["from"]
        found.append((int(variable["turnNum"]), str(sender), amounts))
    return found


def check_virtual_transactions(
    alice: NodeProcess, irene: NodeProcess, bob: NodeProcess, channels: tuple[str, str, str]
) -> None:
    """What each node sent: Alice only her deposit (her cheat is not in her log); only
    Bob challenged the payment channel (Irene holds no voucher), nobody checkpointed; and
    between Irene and Bob (whoever is first) every ledger was challenged and paid out and
    the payment channel reclaimed into both."""
    left, right, channel = channels
    assert transaction_kinds(alice.home) == [("DEPOSIT", "DirectFunding", left)]
    irene_sent, bob_sent = transaction_kinds(irene.home), transaction_kinds(bob.home)
    assert irene_sent[0] == ("DEPOSIT", "DirectFunding", right)
    assert bob_sent[0] == ("DEPOSIT", "DirectFunding", right)
    settling = {(kind, ch) for kind, objective, ch in irene_sent[1:] + bob_sent[1:]}
    assert {objective for _, objective, _ in irene_sent[1:] + bob_sent[1:]} == {"Settling"}
    assert settling == {
        ("CHALLENGE", channel),
        ("CHALLENGE", left),
        ("CHALLENGE", right),
        ("RECLAIM", channel),
        ("TRANSFER", left),
        ("TRANSFER", right),
    }
    assert [tx for tx in bob_sent if tx[0] == "CHALLENGE" and tx[2] == channel] == [
        ("CHALLENGE", "Settling", channel)
    ]
    assert not [tx for tx in irene_sent if tx[2] == channel and tx[0] == "CHALLENGE"]


async def test_a_challenge_duration_out_of_bounds_is_refused_by_the_peer(
    setting: Setting, chain_snapshot: ChainClient
) -> None:
    """Alice's engine takes any duration, so it proposes 0 s, then one above Bob's maximum.
    Bob's policy refuses both and says why; Alice's objectives fail with his reason and
    nothing reaches the chain. Bob still opens a channel within his bounds."""
    everything = (0, constants.challenge_duration_s_max)
    alice = setting.party("alice", ALICE_SIGNER, 1, challenge_durations_s=everything)
    bob = setting.party("bob", BOB_SIGNER, 2)
    low, high = (
        constants.devnet_challenge_duration_s_min,
        constants.challenge_duration_s_max_default,
    )
    first_block = chain_snapshot.block_number()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await start_parties(nursery, alice, bob)
            for seconds in (0, high + 1):
                fund_id = await alice.engine.create_ledger_channel(
                    bob.address, 1, challenge_duration=seconds
                )
                entry = await alice.engine.wait_objective(fund_id)
                assert entry.failure == (
                    f"refused by {bob.address}: policy: challenge duration {seconds} s is outside"
                    f" the {low}..{high} s accepted"
                )
            assert chain_snapshot.block_number() == first_block  # no deposit, nothing sent
            fund_id = await alice.engine.create_ledger_channel(
                bob.address, 1, challenge_duration=low
            )
            for party in (alice, bob):
                assert (await party.engine.wait_objective(fund_id)).done
            nursery.cancel_scope.cancel()
    assert policy_rejections(bob) == [
        f"POLICY: policy: challenge duration {seconds} s is outside the {low}..{high} s accepted"
        for seconds in (0, high + 1)
    ]
    for party in (alice, bob):
        assert party.log.verify().ok
        party.close()


def policy_rejections(party: Party) -> list[str]:
    """The reasons of the peer inputs the party's log shows refused by its policy."""
    reasons = [r.rejected.reason for r in party.log.read() if r.WhichOneof("payload") == "rejected"]
    return [reason for reason in reasons if reason.startswith("POLICY")]
