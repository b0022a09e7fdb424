"""The devnet demo: three nodes in their own processes fund ledger channels, stream
payments over a virtual channel and settle everything on chain.

    python scripts/demo.py [--dir DIR] [--keep]

It starts anvil with the contracts, runs Alice, Irene and Bob as separate
``scnode run`` processes joined over libp2p on 127.0.0.1, opens the ledger
channels Alice–Irene and Irene–Bob funded on chain, shows each node's channels
as its derivation module sees them, opens a virtual channel from Alice to Bob
through Irene, streams 10,000 payments on it in JSON-RPC batches, closes it,
checks that both ledgers moved by exactly what was paid on every node, closes
and settles both ledgers on chain and checks each account's balance to the wei
(gas read from the receipts).

It ends with a dispute: Alice and Irene fund a new ledger, Alice pays Irene over it,
then Alice's node stops and a cheat (node.testing) challenges the ledger on chain with
its postfund, an old state that gives Alice back what she paid, signed with Alice's
key. Irene's node sees the challenge (a ``channel_challenged`` notification) and
answers by itself with its latest state (``checkpoint``); then Irene leaves the ledger
on chain (``settle_ledger_channel``, chain time moved past the challenge duration) and
every account is checked to the wei again. Then it stops the nodes, verifies their
event logs and prints the final balances. Everything it started is stopped at the end,
also on failure. Last, it queries the tables the nodes derived from their logs with
``scnode sql`` (the engine module's view: channels by status, what they paid and
received, and the records each log holds), as a user would with the nodes stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's node

import trio
from devnet_nodes import ScriptNode, start_path, wait_done, wait_until
from rich.console import Console
from rich.table import Table

from node.cli import BatchPayer, channels_table, pay_with_progress, payments_table
from node.rpc import RpcClient

ETH = 10**18
PAYMENTS = 10_000
PAYMENT_WEI = 10**13  # 0.00001 ETH: 10,000 of them pay 0.1 ETH
VIRTUAL_FUNDS_WEI = ETH // 2
DISPUTE_LEDGER_WEI = ETH  # each side of the ledger Alice and Irene dispute
DISPUTE_PAID_WEI = ETH // 4  # what Alice pays Irene over it before her node stops
_OBJECTIVE_TIMEOUT_S = 120.0
_POLL_S = 0.05
console = Console(width=120)


def wait_objective(nodes: list[ScriptNode], objective_id: str, what: str) -> None:
    """Show the pause point until the objective is done on every node."""
    with console.status(what) as status:
        wait_done(
            nodes,
            objective_id,
            timeout_s=_OBJECTIVE_TIMEOUT_S,
            poll_s=_POLL_S,
            waiting=lambda node, info: status.update(
                f"{what}: {node.name} waits for {info['waiting_for']}"
            ),
        )
    console.print(f"  [green]done[/green] {what}")


def open_channel(a: ScriptNode, b: ScriptNode, mine: int, theirs: int) -> str:
    created = a.call(
        "create_ledger_channel",
        counterparty=b.address,
        amount=str(mine),
        counterparty_amount=str(theirs),
    )
    console.print(f"{a.name} asks to open a ledger channel with {b.name}: {created['channel_id']}")
    wait_objective([a, b], created["objective_id"], f"funding {a.name}–{b.name} on chain")
    return str(created["channel_id"])


def show_channels(nodes: list[ScriptNode], title: str) -> None:
    console.rule(title)
    for node in nodes:
        channels = node.call("get_all_ledger_channels")
        table = channels_table(channels)
        table.title = f"{node.name}'s channels, as its derivation module derives them"
        console.print(table)


def nodes_table(nodes: list[ScriptNode]) -> Table:
    """One row per node: its address, then its multiaddr and RPC URL beneath."""
    table = Table(title="nodes")
    table.add_column("node")
    table.add_column("address · multiaddr · JSON-RPC", no_wrap=True)
    for node in nodes:
        table.add_row(node.name, f"{node.address}\n{node.multiaddr}\n{node.rpc_url}")
    return table


def chain_balances(w3: Any, nodes: list[ScriptNode]) -> dict[str, int]:
    """Each node's account balance in wei, by name."""
    return {
        node.name: int(w3.eth.get_balance(w3.to_checksum_address(node.address))) for node in nodes
    }


def balances_table(nodes: list[ScriptNode], balances: dict[str, int], title: str) -> Table:
    table = Table(title=title)
    table.add_column("node")
    table.add_column("address")
    table.add_column("ETH", justify="right")
    for node in nodes:
        table.add_row(node.name, node.address, f"{Decimal(balances[node.name]) / ETH:.6f}")
    return table


def gas_spent(w3: Any, nodes: list[ScriptNode], from_block: int) -> dict[str, int]:
    """Wei each node paid for gas since ``from_block``, from the transaction receipts."""
    names = {node.address.lower(): node.name for node in nodes}
    spent = dict.fromkeys(names.values(), 0)
    for number in range(from_block + 1, w3.eth.block_number + 1):
        for transaction in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            name = names.get(transaction["from"].lower())
            if name is not None:
                receipt = w3.eth.get_transaction_receipt(transaction["hash"])
                spent[name] += receipt["gasUsed"] * receipt["effectiveGasPrice"]
    return spent


def stream_payments(alice: ScriptNode, irene: ScriptNode, bob: ScriptNode) -> int:
    """Alice opens a virtual channel to Bob through Irene, pays, closes; returns the total."""
    console.rule(f"A virtual channel Alice → Irene → Bob, {PAYMENTS:,} payments")
    created = alice.call(
        "create_payment_channel",
        counterparty=bob.address,
        amount=str(VIRTUAL_FUNDS_WEI),
        intermediaries=[irene.address],
    )
    channel = created["channel_id"]
    console.print(f"Alice opens a virtual channel to Bob through Irene: {channel}", soft_wrap=True)
    wait_objective([alice, irene, bob], created["objective_id"], "funding Alice → Bob")
    payer = BatchPayer(alice.rpc_url, alice.token)
    run = pay_with_progress(payer, channel, PAYMENT_WEI, PAYMENTS, console)
    total = PAYMENTS * PAYMENT_WEI
    if run.paid != total:
        raise RuntimeError(f"Alice paid {run.paid} wei in total, expected {total}")
    seconds = wait_until(
        "Bob's vouchers",
        lambda: int(bob.call("get_payment_channel", channel_id=channel)["received"]) == total,
        timeout_s=_OBJECTIVE_TIMEOUT_S,
        poll_s=0.01,
    )
    console.print(
        f"  Alice paid {PAYMENTS:,} × {PAYMENT_WEI} wei in {run.seconds:.2f} s"
        f" ({run.per_second:,.0f} payments/s); Bob had them all {seconds * 1000:.0f} ms later"
    )
    for node in (alice, bob):
        table = payments_table([node.call("get_payment_channel", channel_id=channel)])
        table.title = f"the payment channel as {node.name}'s module derives it"
        console.print(table)
    closed = alice.call("close_payment_channel", channel_id=channel)
    wait_objective([alice, irene, bob], closed["objective_id"], "closing Alice → Bob")
    return total


def check_ledgers(
    nodes: list[ScriptNode], ledgers: dict[str, tuple[str, str, int, int]], paid: int
) -> None:
    """Each ledger, on both of its nodes, moved by exactly ``paid`` from payer to payee."""
    by_name = {node.name: node for node in nodes}
    moved = f"{Decimal(paid) / ETH} ETH"
    table = Table(title=f"ledger balances after the virtual channel closed: {moved} moved")
    for column in ("ledger", "node", "me (wei)", "them (wei)", "check"):
        table.add_column(column, justify="right")
    for name, (payer, payee, payer_start, payee_start) in ledgers.items():
        expected = {payer: (payer_start - paid, payee_start + paid)}
        expected[payee] = (payee_start + paid, payer_start - paid)
        for party in (payer, payee):
            view = by_name[party].call("get_ledger_channel", channel_id=name)
            balance = view["balances"][0]
            got = (int(balance["me"]), int(balance["them"]))
            ok = got == expected[party]
            check = "[green]exact[/green]" if ok else "[red]WRONG[/red]"
            table.add_row(f"{payer}–{payee}", party, str(got[0]), str(got[1]), check)
            if not ok:
                raise RuntimeError(f"{party}'s view of {name}: {got}, expected {expected[party]}")
    console.print(table)


def check_chain(
    nodes: list[ScriptNode],
    before: dict[str, int],
    after: dict[str, int],
    gas: dict[str, int],
    moved: dict[str, int],
) -> None:
    """Each account ends with what it had, less its gas, plus what the payments moved."""
    table = Table(title="on-chain balances: before - gas + payments = after (wei)")
    for column in ("node", "gas", "payments", "expected", "after", "check"):
        table.add_column(column, justify="right")
    for node in nodes:
        expected = before[node.name] - gas[node.name] + moved[node.name]
        ok = after[node.name] == expected
        table.add_row(
            node.name,
            str(gas[node.name]),
            f"{moved[node.name]:+d}",
            str(expected),
            str(after[node.name]),
            "[green]exact[/green]" if ok else "[red]WRONG[/red]",
        )
        if not ok:
            raise RuntimeError(f"{node.name} has {after[node.name]} wei, expected {expected}")
    console.print(table)


def settle_ledgers(nodes: list[ScriptNode], ledgers: dict[str, tuple[str, str, int, int]]) -> None:
    """Each ledger's first party closes it; both close at once."""
    console.rule("Closing both ledger channels and settling them on chain")
    by_name = {node.name: node for node in nodes}
    started = []
    for channel, (first, second, _, _) in ledgers.items():
        closed = by_name[first].call("close_ledger_channel", channel_id=channel)
        started.append(
            (closed["objective_id"], [by_name[first], by_name[second]], f"{first}–{second}")
        )
    for objective_id, parties, name in started:
        wait_objective(parties, objective_id, f"closing {name}")


def verify_logs(nodes: list[ScriptNode]) -> None:
    from node.log import EventLog

    table = Table(title="event logs after the nodes stopped")
    for column in ("node", "records", "head hash", "hash chain"):
        table.add_column(column)
    for node in nodes:
        with EventLog.open(node.home / "log", read_only=True) as log:
            report = log.verify()
            table.add_row(
                node.name,
                str(log.last_seq),
                log.head_hash.hex()[:16] + "...",
                "[green]verified[/green]" if report.ok else f"[red]{report.problem}[/red]",
            )
            if not report.ok:
                raise RuntimeError(f"{node.name}'s log is broken: {report.problem}")
    console.print(table)


class ChallengeWatch:
    """A node's ``channel_challenged`` notifications, in a thread of its own: what the
    node says when it sees a challenge of one of its channels, and how it answers."""

    def __init__(self, node: ScriptNode) -> None:
        self.seen: dict[str, Any] | None = None
        self.ended: str | None = None
        self._done = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._watch, node), daemon=True)
        self._thread.start()
        if not self._subscribed.wait(_OBJECTIVE_TIMEOUT_S):
            raise RuntimeError(f"no WebSocket subscription to {node.name}")

    async def _watch(self, node: ScriptNode) -> None:
        try:
            client = RpcClient(node.rpc_url, node.token)
            async with client.notifications(["channel_challenged"]) as stream:
                self._subscribed.set()
                async for notification in stream:
                    self.seen = dict(notification.params)
                    break
        except Exception as error:  # reported by the main thread
            self.ended = f"watching {node.name}'s notifications failed: {error!r}"
        self._subscribed.set()
        self._done.set()

    def wait(self) -> dict[str, Any]:
        """The first notification.

        Raises:
            RuntimeError: none came in time, or the subscription failed.
        """
        if not self._done.wait(_OBJECTIVE_TIMEOUT_S) or self.seen is None:
            raise RuntimeError(self.ended or "no channel_challenged notification in time")
        return self.seen


def pay_over_ledger(alice: ScriptNode, irene: ScriptNode) -> None:
    """Alice opens a payment channel to Irene funded by their ledger, pays, closes it."""
    created = alice.call(
        "create_payment_channel",
        counterparty=irene.address,
        amount=str(DISPUTE_PAID_WEI),
        intermediaries=[],
    )
    channel = created["channel_id"]
    wait_objective([alice, irene], created["objective_id"], "funding Alice → Irene")
    for _ in range(5):
        alice.call("pay", channel_id=channel, amount=str(DISPUTE_PAID_WEI // 5))
    wait_until(
        "Irene's vouchers",
        lambda: int(irene.call("get_payment_channel", channel_id=channel)["received"])
        == DISPUTE_PAID_WEI,
        timeout_s=_OBJECTIVE_TIMEOUT_S,
        poll_s=_POLL_S,
    )
    closed = alice.call("close_payment_channel", channel_id=channel)
    wait_objective([alice, irene], closed["objective_id"], "closing Alice → Irene")


def stale_challenge(directory: Path, alice: ScriptNode, irene: ScriptNode, ledger: str) -> Any:
    """Alice's node stops; the cheat challenges with the ledger's postfund from her log;
    Irene's node says it saw it and how it answers. Returns the cheat's challenge."""
    from node.testing import challenge_with_old_state

    alice.stop()
    console.print("Alice's node stops. Her log still holds the ledger's postfund, signed by both.")
    watch = ChallengeWatch(irene)
    stale = challenge_with_old_state(alice.home, directory / "chain", bytes.fromhex(ledger[2:]))
    amounts = [a.amount for a in stale.candidate.state.outcome[0].allocations]
    console.print(
        f"[red]With Alice's key, a cheat challenges the ledger with its postfund[/red]"
        f" (turn {stale.candidate.state.turn_num}: Alice {Decimal(amounts[0]) / ETH} ETH,"
        f" Irene {Decimal(amounts[1]) / ETH} ETH) in block {stale.tx.block_number};"
        f" it would finalize at chain time {stale.finalizes_at}",
        soft_wrap=True,
    )
    seen = watch.wait()
    console.print(
        f"Irene's node detects it: channel_challenged, candidate turn"
        f" {seen['candidate_turn_num']}, answer [bold]{seen['answer']}[/bold]"
    )
    if seen["answer"] != "checkpoint":
        raise RuntimeError(f"Irene's node answered {seen['answer']}, expected checkpoint")
    wait_objective([irene], f"Defending-{ledger}", "Irene defends the ledger")
    return stale


def show_defence(chain: Any, irene: ScriptNode, ledger: str, stale: Any) -> None:
    """The checkpoint on chain: who sent it, when, what it cost, what the chain records."""
    channel = bytes.fromhex(ledger[2:])
    logs = (
        chain.require_adjudicator()
        .events.ChallengeCleared()
        .get_logs(from_block=stale.tx.block_number)
    )
    (cleared,) = [log for log in logs if bytes(log["args"]["channelId"]) == channel]
    tx = chain.w3.eth.get_transaction(cleared["transactionHash"])
    receipt = chain.w3.eth.get_transaction_receipt(cleared["transactionHash"])
    if tx["from"].lower() != irene.address.lower():
        raise RuntimeError(f"the challenge was cleared by {tx['from']}, not by Irene")
    status = chain.status(channel)
    if status.finalizes_at != 0:
        raise RuntimeError("the ledger is still challenged on chain")
    view = irene.call("get_ledger_channel", channel_id=ledger)
    console.print(
        f"  Irene's checkpoint with turn {cleared['args']['newTurnNumRecord']} cleared the"
        f" challenge in block {cleared['blockNumber']}"
        f" ({cleared['blockNumber'] - stale.tx.block_number} after it),"
        f" {receipt['gasUsed']:,} gas; the chain records turn {status.turn_num_record},"
        f" no challenge; Irene's view: {'no' if view['dispute'] is None else 'a'} dispute, me"
        f" {Decimal(view['balances'][0]['me']) / ETH} / them"
        f" {Decimal(view['balances'][0]['them']) / ETH} ETH",
        soft_wrap=True,
    )


def leave_ledger(chain: Any, irene: ScriptNode, ledger: str) -> None:
    """Irene leaves the ledger on chain with its latest state: challenge, wait, pay out."""
    settling = irene.call("settle_ledger_channel", channel_id=ledger)
    console.print(f"Irene leaves the ledger on chain with its latest state: {settling['stage']}")
    wait_until(
        "Irene's challenge",
        lambda: irene.call("settle_ledger_channel", channel_id=ledger)["stage"] == "CHALLENGED",
        timeout_s=_OBJECTIVE_TIMEOUT_S,
        poll_s=_POLL_S,
    )
    duration = int(irene.call("get_ledger_channel", channel_id=ledger)["challenge_duration"])
    console.print(f"  challenged; moving the chain's clock {duration + 1} s on")
    chain.rpc("time", "evm_increaseTime", duration + 1)
    chain.rpc("mine", "evm_mine")
    wait_objective([irene], settling["objective_id"], "Irene's payout")
    settled = irene.call("settle_ledger_channel", channel_id=ledger)
    console.print(f"  paid out to Irene: {Decimal(settled['payout']) / ETH} ETH")
    if int(settled["payout"]) != DISPUTE_LEDGER_WEI + DISPUTE_PAID_WEI:
        raise RuntimeError(f"Irene was paid {settled['payout']} wei out of the ledger")


def dispute(directory: Path, nodes: list[ScriptNode], w3: Any) -> None:
    """The ending: a stale challenge, Irene's node defends; every account to the wei."""
    from node.chain import ChainClient, read_devnet

    irene, alice, _ = nodes
    console.rule("A dispute: Alice's node stops, a cheat challenges with an old state")
    data = read_devnet(directory / "chain")
    # Reads the chain and moves its clock; sends no transaction (its key is unused).
    chain = ChainClient(data.rpc_url, bytes.fromhex(data.nodes[0].private_key[2:]))
    chain.use_adjudicator(data.adjudicator)
    start_block, before = w3.eth.block_number, chain_balances(w3, nodes)
    ledger = open_channel(alice, irene, DISPUTE_LEDGER_WEI, DISPUTE_LEDGER_WEI)
    pay_over_ledger(alice, irene)
    check_ledgers(
        nodes,
        {ledger: ("Alice", "Irene", DISPUTE_LEDGER_WEI, DISPUTE_LEDGER_WEI)},
        DISPUTE_PAID_WEI,
    )
    stale = stale_challenge(directory, alice, irene, ledger)
    show_defence(chain, irene, ledger, stale)
    leave_ledger(chain, irene, ledger)
    after = chain_balances(w3, nodes)
    console.print(balances_table(nodes, after, "balances after the dispute"))
    moved = {"Alice": -DISPUTE_PAID_WEI, "Irene": DISPUTE_PAID_WEI, "Bob": 0}
    check_chain(nodes, before, after, gas_spent(w3, nodes, start_block), moved)


# What `make demo` asks each node's derived tables at the end (docs/adr/0009-views.md).
VIEW_QUERIES = (
    "SELECT status, count(*) AS channels, u256_sum(paid) AS paid,"
    " u256_sum(received) AS received, sum(vouchers) AS vouchers"
    " FROM engine.channels GROUP BY status ORDER BY status",
    "SELECT records, last_seq, vouchers FROM engine.totals",
)


def query_views(nodes: list[ScriptNode]) -> None:
    """Each node's derived tables through `scnode sql`, printed as the command prints them.

    Raises:
        RuntimeError: a query failed.
    """
    console.rule("The derived tables, queried with scnode sql")
    for node in nodes:
        for query in VIEW_QUERIES:
            console.print(f'[bold]{node.name}[/bold]: scnode sql --home {node.home} "{query}"')
            result = subprocess.run(
                [sys.executable, "-m", "node.cli", "sql", "--home", str(node.home), query],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"scnode sql on {node.name}'s home: {result.stderr.strip()}")
            console.print(result.stdout.rstrip())


def run_demo(directory: Path) -> None:
    """The whole demo in ``directory``; stops what it started."""
    from web3 import HTTPProvider, Web3

    from node.chain import devnet_down, devnet_up

    console.rule("[bold]scnode devnet demo")
    console.print("Starting anvil and deploying the adjudicator, the apps and a test token ...")
    devnet = devnet_up(directory / "chain", nodes=3)
    console.print(f"chain {devnet.chain_id} at {devnet.rpc_url}, adjudicator {devnet.adjudicator}")
    w3 = Web3(HTTPProvider(devnet.rpc_url))
    nodes: list[ScriptNode] = []
    try:
        console.print("Starting Irene, then Alice and Bob connected to her by multiaddr ...")
        nodes = start_path(directory, directory / "chain", ("Irene", "Alice", "Bob"))
        irene, alice, bob = nodes
        console.print(nodes_table(nodes))
        start_block, before = w3.eth.block_number, chain_balances(w3, nodes)
        console.print(balances_table(nodes, before, "balances before"))
        console.rule("Opening ledger channels, funded on chain")
        ledgers = {
            open_channel(alice, irene, 5 * ETH, 5 * ETH): ("Alice", "Irene", 5 * ETH, 5 * ETH),
            open_channel(irene, bob, 3 * ETH, 2 * ETH): ("Irene", "Bob", 3 * ETH, 2 * ETH),
        }
        show_channels(nodes, "Channels after funding")
        paid = stream_payments(alice, irene, bob)
        check_ledgers(nodes, ledgers, paid)
        settle_ledgers(nodes, ledgers)
        show_channels(nodes, "Channels after settlement")
        after = chain_balances(w3, nodes)
        console.print(balances_table(nodes, after, "balances after settlement"))
        moved = {"Alice": -paid, "Irene": 0, "Bob": paid}
        check_chain(nodes, before, after, gas_spent(w3, nodes, start_block), moved)
        dispute(directory, nodes, w3)
    finally:
        for node in nodes:
            node.stop()
        console.print(f"Stopped {len(nodes)} nodes.")
        if nodes:
            verify_logs(nodes)
        devnet_down(directory / "chain")
        console.print("Stopped the devnet.")
    query_views(nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="scnode-demo-"))
    try:
        run_demo(directory)
    except Exception as error:
        console.print(f"[red]demo failed:[/red] {error}")
        return 1
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
        elif args.keep:
            console.print(f"Kept {directory}: node homes, logs and node output.")
    console.print(json.dumps({"demo": "ok"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
