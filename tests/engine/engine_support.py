"""Engines wired to real parts (RocksDB log, wasm module, anvil) for the engine tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio
import trio.testing

from node.chain import Anvil, ChainClient, ChainService, Deployment
from node.core import Signer, constants
from node.derive import DeriveModule
from node.engine import Engine, EngineConfig, MemoryNetwork, MemoryTransport
from node.log import EventLog
from node.protocols import PolicyLimits, limits_policy
from tests.actors import ALICE, BOB, IRENE, dev_key

T = TypeVar("T")
PROJECT = Path(__file__).resolve().parents[2]
MODULE_PATH = PROJECT / "wasm" / "channels.wasm"
NATIVE = "0x0000000000000000000000000000000000000000"


@dataclass
class Party:
    """One engine with its log, module and transport."""

    name: str
    signer: Signer
    log: EventLog
    engine: Engine
    transport: MemoryTransport
    notifications: list[tuple[str, Mapping[str, object]]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.signer.address

    def close(self) -> None:
        self.log.close()


def make_party(
    directory: Path,
    name: str,
    signer: Signer,
    *,
    module: DeriveModule,
    network: MemoryNetwork,
    deployment: Deployment,
    rpc_url: str,
    chain_index: int,
    start_block: int = 0,
    deposit_max: int = 10**20,
    log_class: type[EventLog] = EventLog,
    watchtower: bool = False,
    with_chain: bool = True,
    challenge_durations_s: tuple[int, int] | None = None,
) -> Party:
    """A party whose engine is rebuilt from ``directory/name/log`` (new or existing);
    ``log_class`` may be a subclass of the real log that counts or fails writes;
    ``watchtower``: it serves as one; ``with_chain`` False: it neither watches nor
    transacts; ``challenge_durations_s`` the (min, max) it accepts (default: the devnet
    minimum and the node's default maximum)."""
    log = log_class.open(directory / name / "log")
    client = ChainClient(rpc_url, dev_key(chain_index), deployment.adjudicator)
    chain = ChainService(client) if with_chain else None
    assets = [NATIVE] if deployment.token is None else [NATIVE, deployment.token]
    low, high = challenge_durations_s or (
        constants.devnet_challenge_duration_s_min,
        constants.challenge_duration_s_max_default,
    )
    limits = PolicyLimits(
        dict.fromkeys(assets, deposit_max),
        challenge_duration_s_min=low,
        challenge_duration_s_max=high,
    )
    notifications: list[tuple[str, Mapping[str, object]]] = []
    engine = Engine(
        log=log,
        module=module,
        signer=signer,
        chain=chain,
        config=EngineConfig(
            deployment.consensus_app,
            limits_policy(limits),
            start_block=start_block,
            limits=limits,
            watchtower=watchtower,
            payment_app=deployment.virtual_payment_app,
        ),
        notify=lambda method, params: notifications.append((method, params)),
    )
    transport = network.endpoint(signer.address)
    engine.attach(transport)
    return Party(name, signer, log, engine, transport, notifications)


@dataclass(frozen=True)
class Setting:
    """What the parties of one test share: directory, module, network and chain."""

    directory: Path
    module: DeriveModule
    deployment: Deployment
    rpc_url: str
    start_block: int = 0
    network: MemoryNetwork = field(default_factory=MemoryNetwork)

    @classmethod
    def on(
        cls,
        directory: Path,
        module: DeriveModule,
        anvil: Anvil,
        deployment: Deployment,
        *,
        start_block: int = 0,
    ) -> Setting:
        """A setting on ``anvil`` whose engines watch the chain from ``start_block``."""
        return cls(directory, module, deployment, anvil.url, start_block)

    def party(
        self,
        name: str,
        signer: Signer,
        chain_index: int,
        *,
        deposit_max: int = 10**20,
        log_class: type[EventLog] = EventLog,
        watchtower: bool = False,
        with_chain: bool = True,
        challenge_durations_s: tuple[int, int] | None = None,
    ) -> Party:
        """A party (new, or rebuilt from its log) paying gas from dev account ``chain_index``."""
        return make_party(
            self.directory,
            name,
            signer,
            module=self.module,
            network=self.network,
            deployment=self.deployment,
            rpc_url=self.rpc_url,
            chain_index=chain_index,
            start_block=self.start_block,
            deposit_max=deposit_max,
            log_class=log_class,
            watchtower=watchtower,
            with_chain=with_chain,
            challenge_durations_s=challenge_durations_s,
        )

    def pair(self) -> tuple[Party, Party]:
        """Alice and Bob: the two ends of a ledger channel."""
        return self.party("alice", ALICE, 1), self.party("bob", BOB, 2)

    def path(self) -> tuple[Party, Party, Party]:
        """Alice, Irene and Bob: the path of a virtual channel."""
        alice = self.party("alice", ALICE, 1)
        return alice, self.party("irene", IRENE, 3), self.party("bob", BOB, 2)


async def start_parties(nursery: trio.Nursery, *parties: Party) -> None:
    """Each party's transport, then its engine, running in ``nursery``."""
    for party in parties:
        await nursery.start(party.transport.run)
        await nursery.start(party.engine.run)


async def open_ledger(
    leader: Party, follower: Party, amount: int, counterparty_amount: int = 0
) -> bytes:
    """A funded ledger channel between the two; its id once both are done."""
    fund_id = await leader.engine.create_ledger_channel(
        follower.address, amount, counterparty_amount=counterparty_amount, challenge_duration=60
    )
    for party in (leader, follower):
        assert (await party.engine.wait_objective(fund_id)).done
    return fund_id.channel_id


async def open_virtual_channel(
    payer: Party, payee: Party, via: list[str] | None, amount: int, *, also: Sequence[Party] = ()
) -> bytes:
    """A virtual channel from payer to payee through ``via`` (None: a route is found); its
    id once the payer and the payee have it open and the parties ``also`` are done."""
    fund_id = await payer.engine.create_payment_channel(payee.address, via, amount)
    for party in also:
        assert (await party.engine.wait_objective(fund_id)).done
    for party in (payer, payee):
        assert (await party.engine.wait_objective(fund_id)).done
        await eventually(
            lambda p=party: _status(p, fund_id.channel_id, "OPEN")  # type: ignore[misc]
        )
    return fund_id.channel_id


async def _status(party: Party, channel: bytes, status: str) -> bool:
    return (await party.engine.payment_channel(channel))["status"] == status


async def eventually(predicate: Callable[[], bool | Awaitable[bool]]) -> None:
    """Poll until ``predicate`` holds (it may be async; the caller's fail_after bounds
    the wait)."""
    while True:
        answer = predicate()
        if answer if isinstance(answer, bool) else await answer:
            return
        await trio.sleep(0.005)


def handled(party: Party, sender: str, message_id: int) -> bool:
    """Whether ``party`` logged a peer's message as received: every record the message
    caused went into the same write."""
    peer = bytes.fromhex(sender[2:])
    return any(
        record.WhichOneof("payload") == "received_messages"
        and record.received_messages.peer == peer
        and message_id in record.received_messages.message_ids
        for record in party.log.read()
    )


async def quiet() -> None:
    """Until every other task of the test waits (on a peer, a timer, the chain): what the
    in-process network carries is handed over at once, so anything sent has been handled.
    For checks that something does not happen, instead of a sleep."""
    await trio.testing.wait_all_tasks_blocked()


async def until(read: Callable[[], Awaitable[T]], test: Callable[[T], bool]) -> T:
    """Poll ``read()`` until ``test`` holds of its answer; returns that answer (the
    caller's fail_after bounds the wait)."""
    while True:
        answer = await read()
        if test(answer):
            return answer
        await trio.sleep(0.005)


async def allocations(party: Party, ledger: bytes) -> list[int]:
    """The amounts of the ledger's supported outcome, as ``party`` derives it."""
    snapshot = await party.engine.channel_snapshot(ledger)
    assert snapshot is not None
    assert snapshot.supported is not None
    (asset_exit,) = snapshot.supported.state.outcome
    return [allocation.amount for allocation in asset_exit.allocations]
