"""Payments end to end: four ``scnode run`` processes over libp2p and one devnet.

Alice, Irene, Bob and Ivan share one devnet and four ledger channels for the
whole module: Alice-Irene, Irene-Bob, Irene-Ivan and Ivan-Bob. Each test opens
virtual channels over them, pays, closes, and checks that every ledger moved by
exactly what was paid; the last test closes the ledgers and checks what the
adjudicator paid out, to the wei.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from node.chain import ChainClient, devnet_down, devnet_node_key, devnet_up, read_devnet
from node.log import EventLog
from node.rpc import ErrorCode, RpcConnectionError, RpcError
from tests.engine.engine_processes import (
    NodeProcess,
    init_home,
    start_node,
    wait_done,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]
NATIVE = "0x" + "0" * 40
DEPOSIT = 10**15  # each side of each ledger, in wei
FUNDS = 10**9  # what the payer locks in each virtual channel
NAMES = ("alice", "irene", "bob", "ivan")  # devnet node index = position
# (leader, follower): the leader creates the ledger and submits its conclusion.
LEDGERS = (("alice", "irene"), ("irene", "bob"), ("irene", "ivan"), ("ivan", "bob"))
BATCH = 100  # pay calls per JSON-RPC batch (constants.rpc_batch_calls_max)

Pair = tuple[str, str]
Books = dict[tuple[Pair, str], int]  # (ledger, party) -> the party's balance in it


@dataclass
class Net:
    """The module's nodes and ledgers; a restarted node replaces its entry."""

    devnet: Path
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    ledgers: dict[Pair, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> NodeProcess:
        return self.nodes[name]

    def address(self, name: str) -> str:
        return self.nodes[name].address

    def peers_of(self, name: str) -> tuple[str, ...]:
        """The multiaddrs a node dials at start: every other node started so far."""
        return tuple(node.multiaddr for other, node in self.nodes.items() if other != name)

    def restart(self, name: str) -> NodeProcess:
        """Start a (killed) node again on its home and port."""
        old = self.nodes[name]
        node = start_node(name, old.home, self.devnet, peers=self.peers_of(name), port=old.port)
        self.nodes[name] = node
        return node

    def views(self) -> dict[Pair, list[dict[str, Any]]]:
        """Each ledger as its two ends show it."""
        return {
            pair: [self[name].call("get_ledger_channel", channel_id=channel) for name in pair]
            for pair, channel in self.ledgers.items()
        }

    def books(self) -> Books:
        """Every party's balance in every ledger, once both ends agree on it."""
        balances: Books = {}
        for pair, views in self.views().items():
            turns = {view["supported_turn_num"] for view in views}
            if len(turns) != 1:
                return {}  # one end has not taken the latest update yet
            for name, view in zip(pair, views, strict=True):
                (balance,) = view["balances"]
                balances[(pair, name)] = int(balance["me"])
        return balances

    def current(self) -> Books:
        """The balances once both ends of every ledger agree."""
        try:
            return wait_for("the ledger ends to agree", lambda: self.books() or None, 15)
        except AssertionError:
            raise AssertionError(f"the ledger ends disagree: {self.views()}") from None

    def settled(self, expected: Books) -> Books:
        """Wait until the ledgers show ``expected``; fail with what they show."""
        seen: list[Books] = [{}]

        def probe() -> Books | None:
            seen[0] = self.books()
            return seen[0] if seen[0] == expected else None

        try:
            return wait_for("the ledger balances", probe, timeout_s=15)
        except AssertionError:
            raise AssertionError(f"ledgers show {seen[0]}, expected {expected}") from None


def moved(books: Books, payer: str, payee: str, path: Sequence[str], amount: int) -> Books:
    """``books`` after ``payer`` paid ``amount`` to ``payee`` through ``path``."""
    after = dict(books)
    hops = [payer, *path, payee]
    for left, right in itertools.pairwise(hops):
        pair = (left, right) if (left, right) in LEDGERS else (right, left)
        after[(pair, left)] -= amount
        after[(pair, right)] += amount
    return after


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("devnet")
    devnet_up(directory, nodes=len(NAMES))
    yield directory
    devnet_down(directory)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory, devnet: Path) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("nodes")
    network = Net(devnet)
    try:
        for index, name in enumerate(NAMES):
            home = init_home(root, name, index)
            network.nodes[name] = start_node(name, home, devnet, peers=network.peers_of(name))
        created = {
            (leader, follower): network[leader].call(
                "create_ledger_channel",
                counterparty=network.address(follower),
                amount=str(DEPOSIT),
                counterparty_amount=str(DEPOSIT),
            )
            for leader, follower in LEDGERS
        }
        for pair, answer in created.items():
            for name in pair:
                wait_done(network[name], answer["objective_id"])
            network.ledgers[pair] = answer["channel_id"]
        yield network
    finally:
        for node in network.nodes.values():
            if node.process.poll() is None:
                node.kill()


def open_channel(net: Net, payer: str, payee: str, path: Sequence[str]) -> str:
    """A virtual channel from ``payer`` to ``payee`` through ``path``, open at every party."""
    created = net[payer].call(
        "create_payment_channel",
        counterparty=net.address(payee),
        intermediaries=[net.address(name) for name in path],
        amount=str(FUNDS),
    )
    for name in (payer, *path, payee):
        wait_done(net[name], created["objective_id"])
    channel: str = created["channel_id"]
    return channel


def close_channel(net: Net, payer: str, channel: str) -> None:
    closing = net[payer].call("close_payment_channel", channel_id=channel)
    view = net[payer].call("get_payment_channel", channel_id=channel)
    for name in (view["payer"], *view["intermediaries"], view["payee"]):
        node = next(node for node in net.nodes.values() if node.address == name)
        wait_done(node, closing["objective_id"])


def pay_batch(node: NodeProcess, channel: str, amounts: Sequence[int]) -> int:
    """Pay each amount in one batch; returns the largest total answered."""
    calls = [("pay", {"channel_id": channel, "amount": str(amount)}) for amount in amounts]
    answers = node.batch(calls)
    failed = [answer for answer in answers if isinstance(answer, RpcError)]
    assert not failed, failed[:3]
    totals = sorted(int(answer["paid"]) for answer in answers)
    # Payments taken in one step share one voucher for their total: each answer is a
    # total covering its payment, and a batch ends on the sum of all of them.
    assert len(set(totals)) < len(totals)
    return totals[-1]


def received(net: Net, name: str, channel: str) -> int:
    return int(net[name].call("get_payment_channel", channel_id=channel)["received"])


def wait_received(net: Net, name: str, channel: str, total: int) -> None:
    wait_for(f"{name} to receive {total}", lambda: received(net, name, channel) == total or None)


def assert_idle(net: Net) -> None:
    """No objective is left running anywhere: nothing stalled."""
    for name, node in net.nodes.items():
        running = node.call("get_node_info")["objectives_running"]
        assert running == 0, f"{name} has {running} objectives running"


def assert_no_guarantees(net: Net) -> None:
    """Each ledger's two own balances add up to its holdings: nothing is locked."""
    for pair, channel in net.ledgers.items():
        views = [net[name].call("get_ledger_channel", channel_id=channel) for name in pair]
        mine = sum(int(view["balances"][0]["me"]) for view in views)
        assert views[0]["holdings"] == [{"asset": NATIVE, "amount": str(mine)}], (pair, views)


@pytest.mark.timeout(180)
def test_one_hop_batches_and_single_calls(net: Net) -> None:
    before = net.current()
    channel = open_channel(net, "alice", "bob", ["irene"])
    view = net["alice"].call("get_payment_channel", channel_id=channel)
    assert view["status"] == "OPEN"
    assert (view["payer"], view["payee"]) == (net.address("alice"), net.address("bob"))
    assert view["intermediaries"] == [net.address("irene")]
    assert view["funds"] == str(FUNDS)
    amounts = [index % 7 + 1 for index in range(20 * BATCH)]
    for start in range(0, len(amounts), BATCH):
        largest = pay_batch(net["alice"], channel, amounts[start : start + BATCH])
        assert largest == sum(amounts[: start + BATCH])
    paid = sum(amounts)
    for amount in range(1, 51):
        paid += amount
        answer = net["alice"].call("pay", channel_id=channel, amount=str(amount))
        assert answer == {"channel_id": channel, "paid": str(paid), "payments": 1}
    wait_received(net, "bob", channel, paid)
    assert net["alice"].call("get_payment_channel", channel_id=channel)["paid"] == str(paid)
    vouchers = net["bob"].call("get_payment_channel", channel_id=channel)["vouchers"]
    assert 20 + 50 <= vouchers < 20 * BATCH + 50  # a voucher per batch step, one per call
    close_channel(net, "alice", channel)
    net.settled(moved(before, "alice", "bob", ["irene"], paid))
    final = net["bob"].call("get_payment_channel", channel_id=channel)
    assert (final["status"], final["received"]) == ("FINALIZED", str(paid))
    assert_no_guarantees(net)
    assert_idle(net)


@pytest.mark.timeout(90)
def test_two_hops(net: Net) -> None:
    before = net.current()
    path = ["irene", "ivan"]
    channel = open_channel(net, "alice", "bob", path)
    view = net["bob"].call("get_payment_channel", channel_id=channel)
    assert view["intermediaries"] == [net.address(name) for name in path]
    paid = pay_batch(net["alice"], channel, [3] * BATCH)
    for _ in range(10):
        paid = int(net["alice"].call("pay", channel_id=channel, amount="11")["paid"])
    assert paid == 3 * BATCH + 110
    wait_received(net, "bob", channel, paid)
    close_channel(net, "alice", channel)
    net.settled(moved(before, "alice", "bob", path, paid))
    assert_no_guarantees(net)
    assert_idle(net)


def refused(node: NodeProcess, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as caught:
        node.call(method, **params)
    return caught.value


@pytest.mark.timeout(90)
def test_vouchers_handed_over_out_of_band(net: Net) -> None:
    before = net.current()
    alice, bob = net["alice"], net["bob"]
    channel = open_channel(net, "alice", "bob", ["irene"])
    first = alice.call("create_voucher", channel_id=channel, amount="10")
    assert (first["channel_id"], first["amount"]) == (channel, "10")
    assert received(net, "bob", channel) == 0  # signed and logged, not sent
    handed = bob.call("receive_voucher", **first)
    assert handed == {"channel_id": channel, "received": "10"}
    replayed = refused(bob, "receive_voucher", **first)
    forged = refused(bob, "receive_voucher", **{**first, "amount": "11"})
    assert {replayed.code, forged.code} == {ErrorCode.INVALID_STATE}
    greedy = refused(alice, "create_voucher", channel_id=channel, amount=str(FUNDS))
    assert greedy.code == ErrorCode.INVALID_STATE  # beyond what the channel holds
    assert alice.call("pay", channel_id=channel, amount="5")["paid"] == "15"
    wait_received(net, "bob", channel, 15)
    close_channel(net, "alice", channel)
    net.settled(moved(before, "alice", "bob", ["irene"], 15))
    assert_idle(net)


@pytest.mark.timeout(120)
def test_twenty_concurrent_channels_over_one_ledger_pair(net: Net) -> None:
    before = net.current()
    alice, bob, irene = net["alice"], net.address("bob"), net.address("irene")
    create = {"counterparty": bob, "intermediaries": [irene], "amount": str(FUNDS)}
    answers = alice.batch([("create_payment_channel", create)] * 20)
    assert not [answer for answer in answers if isinstance(answer, RpcError)], answers
    channels = [answer["channel_id"] for answer in answers]
    assert len(set(channels)) == 20
    for answer in answers:
        for name in ("alice", "irene", "bob"):
            wait_done(net[name], answer["objective_id"])
    assert statuses(net, channels) == {"OPEN"}
    amounts = [1_000 + index for index in range(20)]
    totals = alice.batch(
        [
            ("pay", {"channel_id": c, "amount": str(a)})
            for c, a in zip(channels, amounts, strict=True)
        ]
    )
    assert totals == [
        {"channel_id": c, "paid": str(a), "payments": 1}
        for c, a in zip(channels, amounts, strict=True)
    ]
    for channel, amount in zip(channels, amounts, strict=True):
        wait_received(net, "bob", channel, amount)
    closings = alice.batch([("close_payment_channel", {"channel_id": c}) for c in channels])
    assert not [answer for answer in closings if isinstance(answer, RpcError)], closings
    for answer in closings:
        for name in ("alice", "irene", "bob"):
            wait_done(net[name], answer["objective_id"])
    net.settled(moved(before, "alice", "bob", ["irene"], sum(amounts)))
    assert statuses(net, channels) == {"FINALIZED"}
    assert_no_guarantees(net)
    assert_idle(net)


def statuses(net: Net, channels: Sequence[str]) -> set[str]:
    """The channels' statuses as each ledger end along Alice-Irene-Bob lists them."""
    seen = set()
    for pair in (("alice", "irene"), ("irene", "bob")):
        for name in pair:
            listed = net[name].call("get_payment_channels_by_ledger", channel_id=net.ledgers[pair])
            mine = {view["id"]: view for view in listed if view["id"] in channels}
            assert sorted(mine) == sorted(channels), (name, pair)
            seen |= {view["status"] for view in mine.values()}
    return seen


def stream(node: NodeProcess, channel: str, amount: int, batches: int) -> int:
    """Pay ``amount`` per call, in batches and single calls; returns the total paid."""
    paid = 0
    for _ in range(batches):
        paid = pay_batch(node, channel, [amount] * (BATCH // 2))
        paid = int(node.call("pay", channel_id=channel, amount=str(amount))["paid"])
    return paid


@pytest.mark.timeout(90)
def test_payments_both_ways(net: Net) -> None:
    before = net.current()
    with ThreadPoolExecutor(2) as pool:
        forward = pool.submit(open_channel, net, "alice", "bob", ["irene"])
        backward = pool.submit(open_channel, net, "bob", "alice", ["irene"])
        to_bob, to_alice = forward.result(), backward.result()
        paying = pool.submit(stream, net["alice"], to_bob, 7, 10)
        paid_back = stream(net["bob"], to_alice, 5, 12)
        paid = paying.result()
    assert (paid, paid_back) == (7 * 51 * 10, 5 * 51 * 12)
    wait_received(net, "bob", to_bob, paid)
    wait_received(net, "alice", to_alice, paid_back)
    with ThreadPoolExecutor(2) as pool:
        closes = [
            pool.submit(close_channel, net, "alice", to_bob),
            pool.submit(close_channel, net, "bob", to_alice),
        ]
        for future in closes:
            future.result()
    after = moved(before, "alice", "bob", ["irene"], paid)
    net.settled(moved(after, "bob", "alice", ["irene"], paid_back))
    assert_no_guarantees(net)
    assert_idle(net)


@dataclass
class Streamer:
    """Pays 1 per call on one channel, in batches and single calls, until stopped."""

    node: NodeProcess
    channel: str
    stop: threading.Event = field(default_factory=threading.Event)
    paid: int = 0  # the largest total the node answered
    refused: list[str] = field(default_factory=list)  # calls that failed, cleanly
    unanswered: int = 0  # calls (or batches) that got no answer at all

    def run(self) -> None:
        for round_number in itertools.count():
            if self.stop.is_set():
                return
            if round_number % 2:
                self.paid = max(self.paid, self._batch())
            else:
                self._single()

    def _batch(self) -> int:
        try:
            answers = self.node.batch([("pay", {"channel_id": self.channel, "amount": "1"})] * 20)
        except RpcError as error:  # the whole batch refused
            self.refused.append(str(error))
            return 0
        except RpcConnectionError:
            self.unanswered += 1
            return 0
        self.refused += [str(answer) for answer in answers if isinstance(answer, RpcError)]
        return max((int(a["paid"]) for a in answers if not isinstance(a, RpcError)), default=0)

    def _single(self) -> None:
        try:
            answer = self.node.call("pay", channel_id=self.channel, amount="1")
        except RpcError as error:
            self.refused.append(str(error))
            return
        except RpcConnectionError:
            self.unanswered += 1
            return
        self.paid = max(self.paid, int(answer["paid"]))


def vouchers_accepted(home: Path, channel: str) -> list[int]:
    """The amounts of the vouchers a payee logged as accepted on ``channel``, in log order."""
    with EventLog.open(home / "log", read_only=True) as log:
        return [
            int.from_bytes(record.accepted_voucher.voucher.amount, "big")
            for record in log.read()
            if record.WhichOneof("payload") == "accepted_voucher"
            and not record.accepted_voucher.sent
            and record.accepted_voucher.voucher.channel_id.hex() == channel[2:]
        ]


@pytest.mark.timeout(120)
def test_sigkill_the_payee_mid_stream(net: Net) -> None:
    before = net.current()
    channel = open_channel(net, "alice", "bob", ["irene"])
    streamer = Streamer(net["alice"], channel)
    thread = threading.Thread(target=streamer.run)
    thread.start()
    try:
        wait_for("payments to flow", lambda: received(net, "bob", channel) > 0 or None)
        net["bob"].kill()
        paid_at_kill = streamer.paid
        time.sleep(0.5)  # long enough for Alice to notice the connection is gone
        wait_for("payments while bob is down", lambda: streamer.paid > paid_at_kill + 20 or None)
        net.restart("bob")
        paid_at_restart = streamer.paid
        wait_for("payments after the restart", lambda: streamer.paid > paid_at_restart or None)
    finally:
        streamer.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert streamer.unanswered == 0  # Alice answered every call, Bob up or down
    paid = int(net["alice"].call("get_payment_channel", channel_id=channel)["paid"])
    assert paid == streamer.paid, streamer.refused[:3]
    wait_for(
        f"bob to receive {paid}",
        lambda: received(net, "bob", channel) == paid or None,
        timeout_s=40,
    )
    accepted = vouchers_accepted(net["bob"].home, channel)
    assert accepted[-1] == paid
    assert all(a < b for a, b in itertools.pairwise(accepted)), "a voucher was accepted twice"
    close_channel(net, "alice", channel)
    net.settled(moved(before, "alice", "bob", ["irene"], paid))
    assert_no_guarantees(net)
    assert_idle(net)


@pytest.mark.timeout(120)
def test_sigkill_the_payer_mid_stream(net: Net) -> None:
    before = net.current()
    channel = open_channel(net, "alice", "bob", ["irene"])
    streamer = Streamer(net["alice"], channel)
    thread = threading.Thread(target=streamer.run)
    thread.start()
    try:
        wait_for("payments to flow", lambda: received(net, "bob", channel) > 100 or None)
        net["alice"].kill()
    finally:
        streamer.stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    alice = net.restart("alice")
    paid = int(alice.call("get_payment_channel", channel_id=channel)["paid"])
    assert paid >= streamer.paid  # a payment is logged before it is answered
    # Vouchers logged just before the kill reach Bob: the restarted payer sends its latest.
    wait_received(net, "bob", channel, paid)
    assert alice.call("pay", channel_id=channel, amount="1")["paid"] == str(paid + 1)
    wait_received(net, "bob", channel, paid + 1)
    accepted = vouchers_accepted(net["bob"].home, channel)
    assert accepted[-1] == paid + 1
    assert all(a < b for a, b in itertools.pairwise(accepted)), "a voucher was accepted twice"
    close_channel(net, "alice", channel)
    net.settled(moved(before, "alice", "bob", ["irene"], paid + 1))
    assert_no_guarantees(net)
    assert_idle(net)


@pytest.mark.timeout(180)
def test_payee_and_payer_killed_at_random_moments(net: Net) -> None:
    """SIGKILL at moments drawn from a fixed seed, the payee and the payer in turn, while
    payments stream: every payment answered to the caller reaches the payee, once."""
    before = net.current()
    channel = open_channel(net, "alice", "bob", ["irene"])
    chooser = random.Random(20261202)
    answered = 0
    for victim in ("bob", "alice", "bob"):
        streamer = Streamer(net["alice"], channel)
        thread = threading.Thread(target=streamer.run)
        thread.start()
        try:
            wait_for("payments to flow", lambda s=streamer, floor=answered: s.paid > floor or None)
            time.sleep(chooser.uniform(0.0, 0.4))
            net[victim].kill()
        finally:
            streamer.stop.set()
            thread.join(timeout=60)
        assert not thread.is_alive()
        answered = max(answered, streamer.paid)
        net.restart(victim)
    paid = int(net["alice"].call("get_payment_channel", channel_id=channel)["paid"])
    assert paid >= answered  # a payment is logged before it is answered
    wait_received(net, "bob", channel, paid)
    accepted = vouchers_accepted(net["bob"].home, channel)
    assert accepted[-1] == paid
    assert all(a < b for a, b in itertools.pairwise(accepted)), "a voucher was accepted twice"
    close_channel(net, "alice", channel)
    net.settled(moved(before, "alice", "bob", ["irene"], paid))
    assert_no_guarantees(net)
    assert_idle(net)


@pytest.mark.timeout(90)
def test_route_found_from_gossip(net: Net) -> None:
    before = net.current()
    alice = net["alice"]

    def create() -> dict[str, Any] | None:
        try:
            return dict(
                alice.call("create_payment_channel", counterparty=net.address("bob"), amount="50")
            )
        except RpcError:
            return None  # no route known yet: the announcements are still spreading

    created = wait_for("a route from alice to bob", create, timeout_s=30)
    view = alice.call("get_payment_channel", channel_id=created["channel_id"])
    assert view["intermediaries"] == [net.address("irene")]  # the shortest path
    for name in ("alice", "irene", "bob"):
        wait_done(net[name], created["objective_id"])
    paid = pay_batch(alice, created["channel_id"], [4] * 10)
    wait_received(net, "bob", created["channel_id"], paid)
    close_channel(net, "alice", created["channel_id"])
    net.settled(moved(before, "alice", "bob", ["irene"], paid))
    assert_idle(net)


def spent(client: ChainClient, addresses: set[str], first_block: int) -> dict[str, int]:
    """Wei each address sent in value and gas from ``first_block`` to the head."""
    totals = dict.fromkeys(addresses, 0)
    for number in range(first_block, client.block_number() + 1):
        block: Any = client.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] in totals:
                receipt = client.w3.eth.get_transaction_receipt(tx["hash"])
                gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
                totals[tx["from"]] += gas + tx["value"]
    return totals


@pytest.mark.timeout(90)
def test_ledgers_close_and_pay_out_exactly(net: Net) -> None:
    books = net.current()
    assert sum(books.values()) == 2 * DEPOSIT * len(LEDGERS)
    assert books != dict.fromkeys(books, DEPOSIT)  # the tests above moved money
    devnet = read_devnet(net.devnet)
    client = ChainClient(devnet.rpc_url, devnet_node_key(0), devnet.adjudicator)
    addresses = {net.address(name) for name in NAMES}
    first_block = client.block_number() + 1
    before = {address: client.balance(address) for address in addresses}
    closings = {
        pair: net[pair[0]].call("close_ledger_channel", channel_id=channel)
        for pair, channel in net.ledgers.items()
    }
    for pair, answer in closings.items():
        for name in pair:
            wait_done(net[name], answer["objective_id"])
    fees = spent(client, addresses, first_block)
    for name in NAMES:
        address = net.address(name)
        payout = sum(amount for (_, party), amount in books.items() if party == name)
        assert client.balance(address) - before[address] + fees[address] == payout, name
    for pair, channel in net.ledgers.items():
        assert client.holdings(NATIVE, bytes.fromhex(channel[2:])) == 0
        for name in pair:
            view = net[name].call("get_ledger_channel", channel_id=channel)
            assert view["status"] == "DEFUNDED", (name, view)
    for name, node in net.nodes.items():
        assert node.stop() == 0, node.errors()[-3000:]
        with EventLog.open(node.home / "log", read_only=True) as log:
            assert log.verify().ok, name
        assert "Traceback" not in node.errors(), node.errors()[-3000:]
