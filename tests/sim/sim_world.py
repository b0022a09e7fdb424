"""The simulated world: nodes running the real engine over a ``SimNetwork`` and a
``SimChain``, each with a real RocksDB log in a temporary directory, crashed and
restarted at the seed's will.

A node is its log, its keys and its chain account. ``SimNode.serve`` rebuilds its
``Engine`` from the log (snapshot and tail) and runs it with its transport inside a
cancel scope: a crash cancels the scope, so whatever the node held in memory is gone,
and what it had logged is all that comes back. A crash may also strike right after a
step's write, before its effects (messages, acknowledgements, transactions): the log's
``commit`` raises ``SimCrash`` once the batch is durable.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio

from node.core import Signer, keccak256
from node.derive import DeriveModule, ReferenceFold
from node.engine import Engine, EngineConfig, MemoryTransport
from node.log import EventLog, PreparedBatch, SeqRange
from node.protocols import PolicyLimits, limits_policy
from tests.sim.sim_adjudicator import NATIVE, WorldState
from tests.sim.sim_chain import SIM_CONTRACTS, ChainFaults, SimChain, SimChainService
from tests.sim.sim_network import NetworkFaults, SimNetwork

logger = logging.getLogger("tests.sim")

NODE_NAMES: Final = ("A", "B", "C", "D", "E")
NODE_COINS: Final = 10**9  # each node's native coin at genesis
NODE_TOKENS: Final = 10**9  # and its test tokens
DEPOSIT_MAX: Final = 10**8


def node_signer(index: int) -> Signer:
    """The key of simulated node ``index`` (the same in every run)."""
    return Signer(keccak256(b"scnode simulated node " + bytes([index])))


class SimCrash(Exception):
    """Raised by a node's log after a durable write: the node dies before the effects."""


class CrashingLog(EventLog):
    """The real log; ``crash_next`` makes the next commit end the node once durable."""

    crash_next = False

    def commit(self, prepared: PreparedBatch) -> SeqRange | None:
        written = super().commit(prepared)
        if self.crash_next:
            self.crash_next = False
            raise SimCrash("crashed after a durable write, before its effects")
        return written


@dataclass(frozen=True)
class SimParams:
    """Everything a run's seed decides, drawn once at the start.

    Attributes:
        seed: the run's seed.
        nodes: how many nodes.
        actions: workload actions (the run's "steps").
        network: the network's faults.
        chain: the chain's faults.
        confirmations: blocks an event needs before the engines log it.
        crash: chance, per action, that a node crashes (a third of them right after a
            durable write).
        partition: chance, per action, that the network splits for a while.
        cheat: chance, per action, that a down node's key challenges with a stale state.
        settle: chance, per action, that a participant settles a channel on chain.
        snapshot_interval: records between the engines' snapshots.
        work_read_s: what each read of the engines' work clock costs (step budgets).
        challenge_duration_s: the challenge duration of every channel.
        action_gap_s: the longest pause between two actions.
        poll_interval_s: how often the engines' chain watchers poll.
    """

    seed: int
    nodes: int
    actions: int
    network: NetworkFaults
    chain: ChainFaults
    confirmations: int
    crash: float
    partition: float
    cheat: float
    settle: float
    snapshot_interval: int
    work_read_s: float
    challenge_duration_s: int
    action_gap_s: float
    poll_interval_s: float

    @classmethod
    def from_seed(cls, seed: int, actions: int | None = None) -> SimParams:
        rng = random.Random(f"params {seed}")
        latency = rng.choice((0.001, 0.01, 0.05))
        network = NetworkFaults(
            latency_s=(latency, latency * rng.choice((1, 4, 20))),
            drop=rng.choice((0.0, 0.02, 0.1, 0.3)),
            duplicate=rng.choice((0.0, 0.02, 0.1)),
        )
        shortest = rng.choice((1.0, 2.0, 5.0))
        confirmations = rng.choice((0, 0, 1, 2))
        chain = ChainFaults(
            block_interval_s=(shortest, shortest * rng.choice((1, 3))),
            hold_back=rng.choice((0.0, 0.1, 0.3)),
            drop=rng.choice((0.0, 0.0, 0.02)),
            reorg=rng.choice((0.0, 0.0, 0.05, 0.1)),
            # At most one block deeper than the confirmations: the engines then see
            # logged events reverted (BlocksReverted), as they must survive; deeper
            # reorgs undo what no confirmation depth protects.
            reorg_depth_max=rng.randint(1, confirmations + 1),
        )
        nodes = rng.choice((2, 3, 3, 4, 5))
        # Drawn even when ``actions`` is given: a shorter trace of a seed has every
        # other parameter of the seed's whole run.
        actions_drawn = rng.randint(20, 60)
        return cls(
            seed=seed,
            nodes=nodes,
            actions=actions if actions is not None else actions_drawn,
            network=network,
            chain=chain,
            confirmations=confirmations,
            crash=rng.choice((0.0, 0.05, 0.1, 0.2)),
            partition=rng.choice((0.0, 0.03, 0.1)),
            cheat=rng.choice((0.0, 0.1, 0.3)),
            settle=rng.choice((0.0, 0.02, 0.05)),
            snapshot_interval=rng.choice((25, 100, 1_000, 10_000)),
            work_read_s=rng.choice((0.0, 0.0005, 0.002)),
            challenge_duration_s=rng.choice((60, 120, 300)),
            action_gap_s=rng.choice((0.5, 2.0, 5.0)),
            poll_interval_s=rng.choice((0.2, 0.5, 1.0)),
        )


@dataclass
class SimNode:
    """One node: its key and home, and its engine while it runs."""

    index: int
    signer: Signer
    home: Path
    world: World
    engine: Engine | None = None
    log: CrashingLog | None = None
    transport: MemoryTransport | None = None
    scope: trio.CancelScope | None = None
    nursery: trio.Nursery | None = None
    restarts: int = 0
    crashes: int = 0
    reference: ReferenceFold = field(default_factory=ReferenceFold)
    stopped: trio.Event = field(default_factory=trio.Event)
    started_at: float = 0.0

    @property
    def name(self) -> str:
        return NODE_NAMES[self.index]

    @property
    def address(self) -> str:
        return self.signer.address

    @property
    def up(self) -> bool:
        return self.engine is not None and self.nursery is not None

    def running(self) -> Engine:
        assert self.engine is not None, f"node {self.name} is down"
        return self.engine

    def spawn(self, action: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``action`` in the node's nursery: a crash ends it with the node."""
        if self.nursery is not None:
            self.nursery.start_soon(action, *args)

    def crash(self, *, after_write: bool = False) -> None:
        """Kill the node now (or at its next durable write)."""
        if after_write and self.log is not None:
            self.log.crash_next = True
            return
        if self.scope is not None:
            self.scope.cancel(reason=f"node {self.name} crashes")

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Rebuild the engine from the log and run it until the node crashes."""
        world = self.world
        self.stopped = trio.Event()
        log = CrashingLog.open(self.home / "log")
        self.log = log
        try:
            with trio.CancelScope() as scope:
                self.scope = scope
                try:
                    async with trio.open_nursery() as nursery:
                        engine = self._engine(log)
                        transport = world.network.endpoint(self.address)
                        engine.attach(transport)
                        world.network.set_down(self.address, False)
                        await nursery.start(transport.run)
                        await nursery.start(engine.run)
                        self.engine, self.transport, self.nursery = engine, transport, nursery
                        self.started_at = trio.current_time()
                        world.note(f"{self.name} up (restored {engine.restored})")
                        task_status.started()
                        await trio.sleep_forever()
                except* SimCrash:
                    world.note(f"{self.name} crashed after a durable write")
        finally:
            self.engine = self.transport = self.nursery = self.scope = None
            world.network.set_down(self.address, True)
            self.log = None
            log.close()
            self.crashes += 1
            self.stopped.set()

    def _engine(self, log: EventLog) -> Engine:
        world = self.world
        params = world.params
        assets = (NATIVE, SIM_CONTRACTS.token)
        limits = PolicyLimits(
            dict.fromkeys(assets, DEPOSIT_MAX),
            challenge_duration_s_min=10,
            challenge_duration_s_max=86_400,
        )
        config = EngineConfig(
            SIM_CONTRACTS.consensus_app,
            limits_policy(limits),
            confirmations=params.confirmations,
            payment_app=SIM_CONTRACTS.payment_app,
            snapshot_interval_records=params.snapshot_interval,
            challenge_duration_s=params.challenge_duration_s,
            limits=limits,
        )
        self.restarts += 1
        return Engine(
            log=log,
            module=world.module,
            signer=self.signer,
            chain=SimChainService(  # type: ignore[arg-type]
                world.chain, self.address, poll_interval_s=params.poll_interval_s
            ),
            config=config,
        )


class World:
    """Nodes, network and chain of one run.

    Args:
        params: what the seed decided.
        directory: where the nodes' logs go.
        module: the derivation module (compiled once per process).
    """

    def __init__(self, params: SimParams, directory: Path, module: DeriveModule) -> None:
        self.params = params
        self.module = module
        streams = random.Random(f"streams {params.seed}")
        self.rng = random.Random(streams.getrandbits(64))
        self.network = SimNetwork(random.Random(streams.getrandbits(64)), params.network)
        genesis = WorldState()
        signers = [node_signer(index) for index in range(params.nodes)]
        for signer in signers:
            genesis.balances[(NATIVE, signer.address)] = NODE_COINS
            genesis.balances[(SIM_CONTRACTS.token, signer.address)] = NODE_TOKENS
        self.genesis = genesis
        self.chain = SimChain(
            genesis, faults=params.chain, rng=random.Random(streams.getrandbits(64))
        )
        self.nodes = [
            SimNode(index, signer, directory / NODE_NAMES[index], self)
            for index, signer in enumerate(signers)
        ]
        self.trace: list[str] = []
        self.action = 0  # the workload action being run
        self.nursery: trio.Nursery | None = None

    def note(self, what: str) -> None:
        """Keep a line of the run's story (printed when a check fails)."""
        line = f"{trio.current_time():10.3f} #{self.action:<3} {what}"
        self.trace.append(line)
        logger.debug(line)

    def node(self, address: str) -> SimNode:
        return next(node for node in self.nodes if node.address == address)

    def up_nodes(self) -> list[SimNode]:
        return [node for node in self.nodes if node.up]

    async def start(self, node: SimNode) -> None:
        assert self.nursery is not None
        if not node.up:
            await self.nursery.start(node.serve)

    async def mine(self) -> None:
        """Blocks at the chain's pace, their time the virtual clock's."""
        low, high = self.params.chain.block_interval_s
        while True:
            await trio.sleep(self.chain.rng.uniform(low, high))
            before = self.chain.reorgs
            block = self.chain.mine(self.chain_time_s(), reorg_depth_max=self.reorg_depth_max())
            if self.chain.reorgs != before:
                self.note(f"chain reorganised below block {block.number}")

    def reorg_depth_max(self) -> int:
        """How deep a reorg may go now: one block deeper than the confirmations (the
        engines revert events they logged) only while every node has watched the chain
        for a while. A watcher started after blocks it had processed before were
        replaced cannot tell (it learns block hashes only as it reads them): a known
        limitation (docs/adr/0010-simulation.md), not what these runs look for."""
        confirmations = self.params.confirmations
        settled_s = (confirmations + 3) * self.params.chain.block_interval_s[1]
        now = trio.current_time()
        if all(node.up and now - node.started_at >= settled_s for node in self.nodes):
            return self.params.chain.reorg_depth_max
        return min(self.params.chain.reorg_depth_max, confirmations)

    def chain_time_s(self) -> int:
        return self.chain.blocks[0].time_s + int(trio.current_time())
