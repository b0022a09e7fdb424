"""Benchmark: how fast honest nodes answer stale challenges on chain, and what it costs.

Usage: python scripts/bench_dispute.py [--rounds N] [--dir DIR]

Starts a devnet (anvil and the contracts) and Irene, Alice and Bob as separate
``scnode run`` processes joined over libp2p on 127.0.0.1, and sets up, for N rounds of
each case, with everyone running:

* ledger case: a ledger Alice–Irene whose latest state is newer than its postfund (Alice
  opens a payment channel to Irene over it and pays 1);
* payment-channel case: ledgers Alice–Irene and Irene–Bob and a payment channel Alice →
  Irene → Bob over them, on which Bob holds a voucher.

Then Alice stops for good and, round by round, node.testing's cheat challenges each
channel with its postfund, signed with Alice's key. Irene's node answers a ledger's
stale challenge with ``checkpoint``; Bob's node answers a payment channel's with a
counter-challenge carrying his voucher (and Irene and Bob settle the ledgers under it,
which the next round waits for). Measured: from the block holding the challenge to the
block holding the answer, in ms (wall clock of the blocks' first sighting, polled every
few ms) and in blocks; and the gas of each answer. The last line is JSON.

Each new ledger has a smaller channel id than those before it (the nonces are chosen in
that order) because a node funds a payment channel from its first ledger with the peer
by channel id: so each round's payment channel lands on that round's ledgers.
"""

from __future__ import annotations

import argparse
import functools
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's node
sys.path.insert(0, str(Path(__file__).resolve().parent))

from devnet_nodes import ScriptNode, start_path, wait_done, wait_until
from rich.console import Console
from rich.table import Table

from node.chain import ChainClient, Devnet, devnet_down, devnet_up
from node.core import FixedPart, channel_id
from node.rpc import RpcError
from node.testing import StaleChallenge, challenge_with_old_state

CHALLENGE_S = 600  # of every channel: nothing finalizes while the benchmark runs
LEDGER_WEI = 1_000
PAID_WEI = 7  # Bob's voucher on each payment channel
TIMEOUT_S = 60.0
POLL_S = 0.003
console = Console(width=120)


class BlockClock:
    """When each block was first seen (``time.perf_counter``), from a thread that asks
    the chain for its head every few ms: the challenge and its answer are timed alike."""

    def __init__(self, client: ChainClient) -> None:
        self._client = client
        self._seen: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last = client.block_number()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            head = self._client.block_number()
            now = time.perf_counter()
            with self._lock:
                for number in range(self._last + 1, head + 1):
                    self._seen[number] = now
                self._last = max(self._last, head)
            time.sleep(POLL_S)

    def seen(self, block: int) -> float:
        """When ``block`` was first seen (waits for it)."""
        deadline = time.perf_counter() + TIMEOUT_S
        while True:
            with self._lock:
                if block in self._seen:
                    return self._seen[block]
            if time.perf_counter() > deadline:
                raise RuntimeError(f"block {block} never seen")
            time.sleep(POLL_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Answers:
    """The figures of one kind of answer, a sample per round."""

    kind: str
    latencies_ms: list[float] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    gas: list[int] = field(default_factory=list)
    challenge_gas: list[int] = field(default_factory=list)


class DescendingIds:
    """Channel nonces for ledgers whose ids come out smaller, one after the other."""

    def __init__(self, devnet: Devnet, count: int) -> None:
        self._app = devnet.consensus_app
        self._nonces = [secrets.randbelow(2**63) for _ in range(count)]
        self._count = count

    def ordered(self, leader: str, follower: str) -> list[int]:
        """``count`` nonces for ledgers ``[leader, follower]``, by descending channel id."""
        fixed = [
            FixedPart([leader, follower], nonce, self._app, CHALLENGE_S) for nonce in self._nonces
        ]
        pairs = sorted(zip(fixed, self._nonces, strict=True), key=lambda p: channel_id(p[0]))
        return [nonce for _, nonce in reversed(pairs)]


def open_ledger(leader: ScriptNode, follower: ScriptNode, nonce: int, theirs: int = 0) -> str:
    created: Any = leader.call(
        "create_ledger_channel",
        counterparty=follower.address,
        amount=str(LEDGER_WEI),
        counterparty_amount=str(theirs),
        challenge_duration=CHALLENGE_S,
        nonce=nonce,
    )
    wait_done([leader, follower], created["objective_id"], timeout_s=TIMEOUT_S, poll_s=POLL_S)
    return str(created["channel_id"])


def open_payment(payer: ScriptNode, path: list[ScriptNode], amount: int) -> str:
    """A payment channel from ``payer`` along ``path`` (its last node the payee), paid
    ``amount``; its id once the payee holds the voucher."""
    payee = path[-1]
    created: Any = payer.call(
        "create_payment_channel",
        counterparty=payee.address,
        amount=str(LEDGER_WEI),
        intermediaries=[node.address for node in path[:-1]],
        challenge_duration=CHALLENGE_S,
    )
    channel = str(created["channel_id"])
    wait_done([payer, *path], created["objective_id"], timeout_s=TIMEOUT_S, poll_s=POLL_S)
    wait_until("the channel to open", lambda: status(payer, channel) == "OPEN", timeout_s=TIMEOUT_S)
    payer.call("pay", channel_id=channel, amount=str(amount))
    wait_until("the voucher", lambda: received(payee, channel) == amount, timeout_s=TIMEOUT_S)
    return channel


def status(node: ScriptNode, channel: str) -> str:
    return str(node.call("get_payment_channel", channel_id=channel)["status"])


def received(node: ScriptNode, channel: str) -> int:
    return int(node.call("get_payment_channel", channel_id=channel)["received"])


Paths = list[tuple[str, str, str]]  # a payment channel and its ledgers, left and right


def set_up(nodes: list[ScriptNode], devnet: Devnet, rounds: int) -> tuple[list[str], Paths]:
    """The ledgers (ledger case) and payment channels (payment-channel case) to cheat on."""
    irene, alice, bob = nodes
    ids = DescendingIds(devnet, 3 * rounds)
    left_nonces = iter(ids.ordered(alice.address, irene.address))
    right_nonces = iter(ids.ordered(irene.address, bob.address))
    ledgers: list[str] = []
    channels: Paths = []
    with console.status("setting up") as shown:
        for index in range(rounds):
            shown.update(f"ledger case, round {index + 1}: a ledger and a payment over it")
            ledger = open_ledger(alice, irene, next(left_nonces))
            open_payment(alice, [irene], 1)
            turn = irene.call("get_ledger_channel", channel_id=ledger)["supported_turn_num"]
            if turn <= 1:
                raise RuntimeError(f"the payment channel was not funded by {ledger}")
            ledgers.append(ledger)
        for index in range(rounds):
            shown.update(f"payment-channel case, round {index + 1}: two ledgers, a channel")
            left = open_ledger(alice, irene, next(left_nonces))
            right = open_ledger(irene, bob, next(right_nonces))
            channels.append((open_payment(alice, [irene, bob], PAID_WEI), left, right))
    return ledgers, channels


def event_of(
    client: ChainClient, name: str, channel: bytes, from_block: int, test: Callable[[Any], bool]
) -> Any:
    """The first event ``name`` of ``channel`` from ``from_block`` on that passes ``test``."""
    event = getattr(client.require_adjudicator().events, name)()
    for log in event.get_logs(from_block=from_block):
        if bytes(log["args"]["channelId"]) == channel and test(log):
            return log
    return None


@dataclass(frozen=True)
class Expected:
    """The answer a round waits for: the adjudicator event ``event`` of the challenged
    channel that passes ``test``, in a transaction ``answerer`` sent."""

    event: str
    test: Callable[[Any], bool]
    answerer: ScriptNode


def answer_round(
    client: ChainClient,
    clock: BlockClock,
    answers: Answers,
    cheat: Callable[[], StaleChallenge],
    expected: Expected,
) -> None:
    """One stale challenge (``cheat()``), timed to its answer."""
    stale = cheat()
    challenged_at = clock.seen(stale.tx.block_number)
    deadline = time.perf_counter() + TIMEOUT_S
    block = stale.tx.block_number
    while (log := event_of(client, expected.event, stale.channel_id, block, expected.test)) is None:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{answers.kind}: no answer within {TIMEOUT_S:g} s")
        time.sleep(POLL_S)
    answered = int(log["blockNumber"])
    sender = client.w3.eth.get_transaction(log["transactionHash"])["from"]
    if sender.lower() != expected.answerer.address.lower():
        raise RuntimeError(f"{answers.kind}: answered by {sender}, not {expected.answerer.name}")
    answers.latencies_ms.append((clock.seen(answered) - challenged_at) * 1000)
    answers.blocks.append(answered - block)
    receipt = client.w3.eth.get_transaction_receipt(log["transactionHash"])
    answers.gas.append(int(receipt["gasUsed"]))
    answers.challenge_gas.append(stale.tx.gas_used)


def run_cheats(
    directory: Path,
    nodes: list[ScriptNode],
    client: ChainClient,
    ledgers: list[str],
    channels: Paths,
) -> list[Answers]:
    """Alice stops; each channel is challenged with its postfund in turn."""
    irene, alice, bob = nodes
    alice.stop()

    def cheat(channel: str) -> Callable[[], StaleChallenge]:
        target = bytes.fromhex(channel[2:])
        return functools.partial(challenge_with_old_state, alice.home, directory / "chain", target)

    clock = BlockClock(client)
    checkpoint, counter = Answers("checkpoint (Irene)"), Answers("counter-challenge (Bob)")
    cleared = Expected("ChallengeCleared", lambda _: True, irene)
    redeemed = Expected("ChallengeRegistered", redemption, bob)
    try:
        for ledger in ledgers:
            answer_round(client, clock, checkpoint, cheat(ledger), cleared)
        for payment, left, right in channels:
            answer_round(client, clock, counter, cheat(payment), redeemed)
            wait_settlements(irene, bob, left, right)
    finally:
        clock.close()
    return [checkpoint, counter]


def redemption(log: Any) -> bool:
    """A challenge with the redemption state (turn 2), which carries the payee's voucher."""
    return int(log["args"]["candidate"]["variablePart"]["turnNum"]) == 2


def wait_settlements(irene: ScriptNode, bob: ScriptNode, left: str, right: str) -> None:
    """Irene's settlements of both ledgers under a payment channel and Bob's of his wait
    for their challenges to finalize (so the next round does not share the chain)."""

    def stage(node: ScriptNode, ledger: str) -> str:
        try:
            info = node.call("get_objective", objective_id=f"Settling-{ledger}")
        except RpcError:  # not started yet
            return "NONE"
        if info["status"] == "FAILED":
            raise RuntimeError(f"{node.name}: {info['id']} failed: {info['failure']}")
        return str(info["waiting_for"])

    wait_until(
        "the settlements' challenges",
        lambda: {stage(irene, left), stage(irene, right), stage(bob, right)} == {"FINALIZATION"},
        timeout_s=TIMEOUT_S,
        poll_s=0.02,
    )


def report(all_answers: list[Answers], rounds: int) -> dict[str, Any]:
    table = Table(title=f"stale challenges answered by the nodes, {rounds} of each")
    columns = ("answer", "p50 ms", "max ms", "p50 blocks", "max blocks", "gas p50", "gas max")
    for column in (*columns, "stale challenge gas p50"):
        table.add_column(column, justify="right")
    figures: dict[str, Any] = {}
    for answers in all_answers:
        entry = {
            "p50_ms": round(statistics.median(answers.latencies_ms), 1),
            "max_ms": round(max(answers.latencies_ms), 1),
            "p50_blocks": statistics.median(answers.blocks),
            "max_blocks": max(answers.blocks),
            "gas_p50": int(statistics.median(answers.gas)),
            "gas_max": max(answers.gas),
            "challenge_gas_p50": int(statistics.median(answers.challenge_gas)),
        }
        figures[answers.kind.split(" ")[0]] = entry
        table.add_row(
            answers.kind,
            f"{entry['p50_ms']:.0f}",
            f"{entry['max_ms']:.0f}",
            f"{entry['p50_blocks']:g}",
            str(entry["max_blocks"]),
            f"{entry['gas_p50']:,}",
            f"{entry['gas_max']:,}",
            f"{entry['challenge_gas_p50']:,}",
        )
    console.print(table)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="stale challenges of each kind")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    scratch = args.dir is None
    directory = args.dir or Path(tempfile.mkdtemp(prefix="scnode-bench-"))
    devnet = devnet_up(directory / "chain", nodes=3)
    client = ChainClient(devnet.rpc_url, bytes.fromhex(devnet.nodes[0].private_key[2:]))
    client.use_adjudicator(devnet.adjudicator)
    nodes: list[ScriptNode] = []
    try:
        nodes = start_path(directory, directory / "chain", ("Irene", "Alice", "Bob"), verbose=False)
        console.print(f"anvil {devnet.rpc_url}; Irene, Alice, Bob up")
        started = time.perf_counter()
        ledgers, channels = set_up(nodes, devnet, args.rounds)
        console.print(
            f"set up {args.rounds} rounds of each case in {time.perf_counter() - started:.1f} s"
        )
        answers = run_cheats(directory, nodes, client, ledgers, channels)
    finally:
        for node in nodes:
            node.stop()
        devnet_down(directory / "chain")
        if scratch:
            shutil.rmtree(directory, ignore_errors=True)
    figures = report(answers, args.rounds)
    print(json.dumps({"benchmark": "dispute", "rounds": args.rounds, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
