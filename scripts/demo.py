"""The local devnet demo: two parties fund, update and settle a Nitro ledger
channel on a real chain, and every accepted input lands in each party's event log.

Usage: python scripts/demo.py [--dir DIR] [--keep]

It starts anvil with our adjudicator, gives Alice and Bob node homes, signs the
prefund, deposits in outcome order, signs the postfund, moves funds off chain,
signs a final state, concludes and pays out on chain, then verifies both logs,
shows the state derived from them, prints the balances and stops the chain.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import trio
from rich.console import Console
from rich.table import Table

from node.chain import (
    NATIVE_ASSET,
    TEST_TOKEN,
    ChainService,
    ChainWatcher,
    Devnet,
    Submitted,
    devnet_down,
    devnet_node_key,
    devnet_up,
    load_artifact,
)
from node.cli import main as scnode
from node.core import (
    Allocation,
    FixedPart,
    SignedState,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    signed_state_to_proto,
    state_hash,
    uint256_to_bytes,
)
from node.home import NodeHome
from node.log import EventLog
from node.proto import log_pb2

ROOT = Path(__file__).resolve().parent.parent
ETHER = 10**18
console = Console(width=120)


@dataclass(frozen=True)
class Party:
    """One side of the channel: its name, signer, home, log and chain access."""

    name: str
    signer: Signer
    home: NodeHome
    log: EventLog
    chain: ChainService


def now_ms() -> int:
    return int(time.time() * 1000)


def accept_state(parties: list[Party], signed: SignedState) -> None:
    """Both parties log the state with the signatures they have checked."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.accepted_state.channel_id = channel_id(signed.state.fixed)
    record.accepted_state.state_hash = state_hash(signed.state)
    record.accepted_state.signed_state.CopyFrom(signed_state_to_proto(signed))
    for party in parties:
        party.log.append_batch([record])


def sign_by_all(parties: list[Party], state: State) -> SignedState:
    signatures = {index: party.signer.sign_state(state) for index, party in enumerate(parties)}
    return SignedState(state, signatures)


async def deposit(party: Party, channel: bytes, asset: str, held: int, amount: int) -> None:
    async def log_submitted(submitted: Submitted) -> None:
        record = log_pb2.LogRecord(time_ms=now_ms())
        tx = record.submitted_transaction
        tx.objective_id = f"DirectFunding-0x{channel.hex()}"
        tx.tx_kind = (
            log_pb2.TRANSACTION_KIND_DEPOSIT
            if submitted.operation == "deposit"
            else log_pb2.TRANSACTION_KIND_APPROVE
        )
        tx.channel_id, tx.tx_hash, tx.nonce = channel, submitted.tx_hash, submitted.nonce
        tx.amount = uint256_to_bytes(amount)
        party.log.append_batch([record])

    result = await party.chain.deposit(asset, channel, held, amount, on_submitted=log_submitted)
    console.print(
        f"  {party.name} deposits {amount / ETHER:g} of {asset_name(asset)} "
        f"(block {result.block_number}, gas {result.gas_used})"
    )


def asset_name(asset: str) -> str:
    return "ETH" if int(asset, 16) == 0 else "TOKEN"


async def record_chain_events(parties: list[Party], watcher: ChainWatcher) -> int:
    """Everything the adjudicator emitted since the last call, into both logs."""
    events: list[log_pb2.ChainEvent] = []
    while True:
        batch = await trio.to_thread.run_sync(watcher.poll)
        events.extend(batch.events)
        if batch.caught_up:
            break
    records = []
    for event in events:
        record = log_pb2.LogRecord(time_ms=now_ms())
        record.chain_event.CopyFrom(event)
        records.append(record)
    if records:
        for party in parties:
            party.log.append_batch(records)
    return len(records)


def balances_table(title: str, devnet: Devnet, parties: list[Party]) -> Table:
    token = parties[0].chain.client.contract(load_artifact(TEST_TOKEN), devnet.token)
    table = Table(title=title)
    table.add_column("party")
    table.add_column("address")
    table.add_column("ETH", justify="right")
    table.add_column("TOKEN", justify="right")
    for party in parties:
        address = party.signer.address
        eth = party.chain.client.balance(address) / ETHER
        tokens = token.functions.balanceOf(address).call() / ETHER
        table.add_row(party.name, address, f"{eth:.6f}", f"{tokens:,.2f}")
    return table


def outcome_of(parties: list[Party], amounts: dict[str, tuple[int, int]]) -> list[SingleAssetExit]:
    """One exit per asset: (Alice's, Bob's) amounts in outcome order."""
    destinations = [address_to_destination(party.signer.address) for party in parties]
    return [
        SingleAssetExit(
            asset, [Allocation(destinations[0], first), Allocation(destinations[1], second)]
        )
        for asset, (first, second) in amounts.items()
    ]


async def run_demo(directory: Path) -> None:
    console.rule("[bold]scnode devnet demo")
    console.print("Starting anvil and deploying the adjudicator, apps and a test token ...")
    devnet = devnet_up(directory / "chain", nodes=2)
    try:
        await fund_and_settle(directory, devnet)
    finally:
        devnet_down(directory / "chain")
        console.print("Stopped the devnet.")


async def fund_and_settle(directory: Path, devnet: Devnet) -> None:
    console.print(f"chain {devnet.chain_id} at {devnet.rpc_url}; adjudicator {devnet.adjudicator}")
    parties = []
    for index, name in enumerate(("Alice", "Bob")):
        home = NodeHome(directory / name.lower())
        home.initialise(node_key=devnet_node_key(index))
        log = EventLog.open(home.log_path)
        chain = ChainService.connect(devnet.rpc_url, home.chain_key(), devnet.adjudicator)
        parties.append(Party(name, Signer(home.node_key()), home, log, chain))
    console.print(balances_table("Balances before", devnet, parties))

    fixed = FixedPart([p.signer.address for p in parties], 1, devnet.consensus_app, 60)
    cid = channel_id(fixed)
    amounts = {NATIVE_ASSET: (3 * ETHER, 2 * ETHER), devnet.token: (100 * ETHER, 50 * ETHER)}
    outcome = outcome_of(parties, amounts)
    console.rule("Funding ledger channel 0x" + cid.hex()[:16] + "...")
    watcher = ChainWatcher(parties[0].chain.client, from_block=devnet.deployed_at_block)
    accept_state(parties, sign_by_all(parties, State(fixed, b"", outcome, 0, False)))
    console.print("  prefund (turn 0) signed by both")
    for index, party in enumerate(parties):
        for asset, split in amounts.items():
            held = sum(split[:index])
            await deposit(party, cid, asset, held, split[index])
    events = await record_chain_events(parties, watcher)
    console.print(f"  {events} chain events recorded in both logs")
    accept_state(parties, sign_by_all(parties, State(fixed, b"", outcome, 1, False)))
    console.print("  postfund (turn 1) signed by both: the channel is open")

    console.rule("Off-chain update and settlement")
    moved = outcome_of(
        parties,
        {NATIVE_ASSET: (2 * ETHER, 3 * ETHER), devnet.token: (75 * ETHER, 75 * ETHER)},
    )
    accept_state(parties, sign_by_all(parties, State(fixed, b"", moved, 2, False)))
    console.print("  turn 2: Alice pays Bob 1 ETH and 25 TOKEN off chain")
    final = sign_by_all(parties, State(fixed, b"", moved, 3, True))
    accept_state(parties, final)
    console.print("  turn 3: final state signed by both")
    result = await parties[0].chain.conclude_and_transfer_all_assets(final)
    console.print(f"  Alice concludes and pays out (gas {result.gas_used})")
    events = await record_chain_events(parties, watcher)
    console.print(f"  {events} more chain events recorded")
    console.print(balances_table("Balances after", devnet, parties))
    show_logs(parties)


def show_logs(parties: list[Party]) -> None:
    for party in parties:
        party.log.close()
    console.rule("Alice's event log")
    home = str(parties[0].home.root)
    scnode(["log", "show", "--home", home])
    for party in parties:
        console.print(f"[bold]{party.name}[/bold]: ", end="")
        code = scnode(["log", "verify", "--home", str(party.home.root)])
        if code != 0:
            raise SystemExit(f"{party.name}'s log does not verify")
    console.rule("Channel state derived from Alice's log by wasm/channels.wasm")
    if scnode(["derive", "--home", home]) != 0:
        raise SystemExit("derivation failed")
    console.rule("... and as of record 10, just after the postfund")
    if scnode(["derive", "--home", home, "--at", "10"]) != 0:
        raise SystemExit("derivation failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "demo-run", help="working directory")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    options = parser.parse_args()
    if not sys.stdout.isatty():
        os.environ["COLUMNS"] = "120"  # the node's tables are wide; pipes default to 80
    shutil.rmtree(options.dir, ignore_errors=True)
    options.dir.mkdir(parents=True)
    started = time.monotonic()
    trio.run(run_demo, options.dir)
    console.rule(f"[bold green]demo finished in {time.monotonic() - started:.1f} s")
    if not options.keep:
        shutil.rmtree(options.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
