"""What the users of the simulated nodes do, from the seed: open and close ledger
channels, open virtual channels over 0 to 2 intermediaries, pay, close them, settle on
chain; and what goes wrong around them: crashes, partitions, and a participant whose
key, while its node is down, challenges a channel with a stale state.

Each action picks among what the nodes' logs say exists (the workload keeps only the
channels it asked for); refusals are part of the game and are only noted.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from node.core import FixedPart, channel_id
from node.core.errors import ChainError
from node.engine import CommandRefusedError
from node.log import EventLog
from node.proto import derive_pb2
from node.protocols import ObjectiveId, ObjectiveKind
from node.testing import supported_states_in
from tests.sim.sim_adjudicator import NATIVE, unpack_status
from tests.sim.sim_chain import SIM_CONTRACTS, SimChainService
from tests.sim.sim_world import SimNode, World

OPEN = derive_pb2.CHANNEL_STATUS_OPEN


@dataclass
class Ledger:
    """A ledger channel the workload asked for."""

    leader: SimNode
    follower: SimNode
    fixed: FixedPart
    asset: str

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.fixed)

    @property
    def ends(self) -> tuple[SimNode, SimNode]:
        return self.leader, self.follower


@dataclass
class Virtual:
    """A virtual channel the workload asked for: ``path`` from payer to payee."""

    path: list[SimNode]
    fixed: FixedPart
    amount: int

    @property
    def channel_id(self) -> bytes:
        return channel_id(self.fixed)

    @property
    def payer(self) -> SimNode:
        return self.path[0]

    @property
    def payee(self) -> SimNode:
        return self.path[-1]


def status(node: SimNode, channel: bytes) -> int | None:
    """The channel's status as ``node``'s module derives it (None: down, or unknown)."""
    if node.engine is None:
        return None
    view = node.engine.deriver.channel(channel)
    return None if view is None else int(view.status)


class Workload:
    """The seed's users.

    Args:
        world: the world they act in.
        rng: their random stream.
    """

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.ledgers: list[Ledger] = []
        self.virtuals: list[Virtual] = []
        self._nonces = itertools.count(1)

    async def act(self) -> None:
        """One action, by the weights below (faults by the seed's rates)."""
        params = self.world.params
        rng = self.rng
        for chance, fault in (
            (params.crash, self.crash),
            (params.partition, self.partition),
            (params.cheat, self.cheat),
            (params.settle, self.settle),
        ):
            if rng.random() < chance:
                fault()
        actions: list[tuple[float, Callable[[], None]]] = [
            (3.0 if len(self.ledgers) < 2 * params.nodes else 0.5, self.open_ledger),
            (3.0, self.open_virtual),
            (6.0, self.pay),
            (1.5, self.close_virtual),
            (0.7, self.close_ledger),
        ]
        weights = [weight for weight, _ in actions]
        rng.choices([action for _, action in actions], weights)[0]()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------------ helpers

    def _ask(self, node: SimNode, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Run an API call in ``node`` (it dies with the node); a refusal is noted."""

        async def asking() -> None:
            try:
                await call()
            except CommandRefusedError as error:
                self.world.note(f"{node.name}: {what} refused: {error}")

        self.world.note(f"{node.name}: {what}")
        node.spawn(asking)

    def _up(self) -> list[SimNode]:
        return self.world.up_nodes()

    def open_ledgers(self, asset: str | None = None) -> list[Ledger]:
        """Ledgers that every end that is up derives as open."""
        found = []
        for ledger in self.ledgers:
            if asset is not None and ledger.asset != asset:
                continue
            seen = [status(end, ledger.channel_id) for end in ledger.ends if end.up]
            if seen and all(value == OPEN for value in seen):
                found.append(ledger)
        return found

    # ------------------------------------------------------------------ channels

    def open_ledger(self) -> None:
        up = self._up()
        if not up:
            return
        leader = self.rng.choice(up)
        follower = self.rng.choice([n for n in self.world.nodes if n is not leader])
        asset = SIM_CONTRACTS.token if self.rng.random() < 0.2 else NATIVE
        mine = self.rng.randint(1_000, 5_000)
        theirs = self.rng.choice((0, self.rng.randint(1_000, 5_000)))
        nonce = next(self._nonces)
        duration = self.world.params.challenge_duration_s
        fixed = FixedPart(
            [leader.address, follower.address], nonce, SIM_CONTRACTS.consensus_app, duration
        )
        self.ledgers.append(Ledger(leader, follower, fixed, asset))
        engine = leader.running()
        self._ask(
            leader,
            f"open ledger 0x{channel_id(fixed).hex()[:8]} with {follower.name} ({mine}+{theirs})",
            lambda: engine.create_ledger_channel(
                follower.address,
                mine,
                counterparty_amount=theirs,
                asset=asset,
                challenge_duration=duration,
                nonce=nonce,
            ),
        )

    def funding(self) -> list[Virtual]:
        """Virtual channels some node on their path may still fund."""
        found = []
        for virtual in self.virtuals:
            objective = ObjectiveId(ObjectiveKind.VIRTUAL_FUND, virtual.channel_id)
            for node in virtual.path:
                if node.engine is None:
                    found.append(virtual)  # cannot tell: count it as funding
                    break
                entry = node.engine.state.entry(objective)
                if (entry is None and node is virtual.payer) or (
                    entry is not None and entry.running
                ):
                    found.append(virtual)
                    break
        return found

    def busy_ledgers(self) -> set[bytes]:
        """Ledgers a virtual channel being funded may go through: not to be closed or
        settled meanwhile (a VirtualFund whose ledger goes away fails, and a proposal
        its follower then never countersigns stalls the other ledgers of its path:
        see docs/adr/0010-simulation.md)."""
        busy: set[bytes] = set()
        for virtual in self.funding():
            for left, right in itertools.pairwise(virtual.path):
                busy.update(
                    ledger.channel_id
                    for ledger in self.ledgers
                    if {ledger.leader.index, ledger.follower.index} == {left.index, right.index}
                )
        return busy

    def hop_ledger(self, left: SimNode, right: SimNode) -> Ledger | None:
        """The ledger the engines pick between two neighbours: the first open one in the
        native asset by channel id."""
        pair = {left.index, right.index}
        ledgers = [
            ledger
            for ledger in self.open_ledgers(NATIVE)
            if {ledger.leader.index, ledger.follower.index} == pair
        ]
        return min(ledgers, key=lambda ledger: ledger.channel_id, default=None)

    def affordable(self, path: list[SimNode], amount: int) -> bool:
        """Whether each ledger on ``path`` can lock ``amount`` from its left party, after
        what is queued on it and what the channels being funded will take."""
        reserved: dict[tuple[bytes, int], int] = {}
        for virtual in self.funding():
            for left, right in itertools.pairwise(virtual.path):
                ledger = self.hop_ledger(left, right)
                if ledger is not None:
                    key = (ledger.channel_id, left.index)
                    reserved[key] = reserved.get(key, 0) + virtual.amount
        for left, right in itertools.pairwise(path):
            ledger = self.hop_ledger(left, right)
            if ledger is None:
                return False
            available = _balance(ledger, left)
            if available is None:
                return False
            if available - reserved.get((ledger.channel_id, left.index), 0) < amount:
                return False
        return True

    def _paths(self, payer: SimNode) -> list[list[SimNode]]:
        """Paths of 1 to 3 open native ledgers from ``payer``, without repeats."""
        links: dict[int, set[int]] = {}
        for ledger in self.open_ledgers(NATIVE):
            a, b = ledger.leader.index, ledger.follower.index
            links.setdefault(a, set()).add(b)
            links.setdefault(b, set()).add(a)
        paths: list[list[int]] = []
        frontier = [[payer.index]]
        for _ in range(3):
            frontier = [
                [*path, hop]
                for path in frontier
                for hop in sorted(links.get(path[-1], ()))
                if hop not in path
            ]
            paths.extend(frontier)
        return [[self.world.nodes[i] for i in path] for path in paths]

    def open_virtual(self) -> None:
        up = self._up()
        if not up:
            return
        payer = self.rng.choice(up)
        paths = self._paths(payer)
        if not paths:
            self.open_ledger()
            return
        path = self.rng.choice(paths)
        amount = self.rng.randint(10, 300)
        if not self.affordable(path, amount):
            self.world.note(f"{payer.name}: no virtual channel of {amount} on that path")
            return
        nonce = next(self._nonces)
        duration = self.world.params.challenge_duration_s
        fixed = FixedPart(
            [node.address for node in path], nonce, SIM_CONTRACTS.payment_app, duration
        )
        self.virtuals.append(Virtual(path, fixed, amount))
        engine = payer.running()
        via = [node.address for node in path[1:-1]]
        names = "-".join(node.name for node in path)
        self._ask(
            payer,
            f"open virtual 0x{channel_id(fixed).hex()[:8]} {names} ({amount})",
            lambda: engine.create_payment_channel(
                path[-1].address, via, amount, challenge_duration=duration, nonce=nonce
            ),
        )

    def pay(self) -> None:
        ready = [v for v in self.virtuals if v.payer.up and status(v.payer, v.channel_id) == OPEN]
        if not ready:
            self.open_virtual()
            return
        virtual = self.rng.choice(ready)
        engine = virtual.payer.running()
        amounts = [self.rng.randint(1, 5) for _ in range(self.rng.choice((1, 1, 3, 10)))]

        async def paying() -> None:
            for amount in amounts:
                await engine.pay(virtual.channel_id, amount)

        self._ask(
            virtual.payer,
            f"pay {sum(amounts)} in {len(amounts)} on 0x{virtual.channel_id.hex()[:8]}",
            paying,
        )

    def close_virtual(self) -> None:
        ready = [v for v in self.virtuals if v.payer.up and status(v.payer, v.channel_id) == OPEN]
        if not ready:
            return
        virtual = self.rng.choice(ready)
        engine = virtual.payer.running()
        self._ask(
            virtual.payer,
            f"close virtual 0x{virtual.channel_id.hex()[:8]}",
            lambda: engine.close_payment_channel(virtual.channel_id),
        )

    def close_ledger(self) -> None:
        busy = self.busy_ledgers()
        ready = [ledger for ledger in self.open_ledgers() if ledger.channel_id not in busy]
        if not ready:
            return
        ledger = self.rng.choice(ready)
        closer = self.rng.choice([end for end in ledger.ends if end.up])
        engine = closer.running()
        self._ask(
            closer,
            f"close ledger 0x{ledger.channel_id.hex()[:8]}",
            lambda: engine.close_ledger_channel(ledger.channel_id),
        )

    # ------------------------------------------------------------------ faults

    def settle(self) -> None:
        """A participant leaves a channel on chain on its own."""
        if self.rng.random() < 0.5:
            ready = [
                v for v in self.virtuals if v.payee.up and status(v.payee, v.channel_id) == OPEN
            ]
            if ready:
                virtual = self.rng.choice(ready)
                engine = virtual.payee.running()
                self._ask(
                    virtual.payee,
                    f"settle virtual 0x{virtual.channel_id.hex()[:8]} on chain",
                    lambda: engine.settle_payment_channel(virtual.channel_id),
                )
                return
        busy = self.busy_ledgers()
        ledgers = [ledger for ledger in self.open_ledgers() if ledger.channel_id not in busy]
        if ledgers:
            ledger = self.rng.choice(ledgers)
            end = self.rng.choice([node for node in ledger.ends if node.up])
            engine = end.running()
            self._ask(
                end,
                f"settle ledger 0x{ledger.channel_id.hex()[:8]} on chain",
                lambda: engine.settle_ledger_channel(ledger.channel_id),
            )

    def crash(self) -> None:
        up = self._up()
        if not up:
            return
        node = self.rng.choice(up)
        after_write = self.rng.random() < 1 / 3
        downtime = self.rng.uniform(0.5, 20.0)
        self.world.note(f"{node.name} crashes{' after its next write' if after_write else ''}")
        node.crash(after_write=after_write)
        assert self.world.nursery is not None
        self.world.nursery.start_soon(self._restart, node, downtime)

    async def _restart(self, node: SimNode, downtime: float) -> None:
        with trio.move_on_after(30):  # a crash after a write waits for the write
            await node.stopped.wait()
        node.crash()
        await node.stopped.wait()
        await trio.sleep(downtime)
        await self.world.start(node)

    def partition(self) -> None:
        nodes = [node.address for node in self.world.nodes]
        self.rng.shuffle(nodes)
        cut = self.rng.randint(1, len(nodes) - 1)
        side, others = set(nodes[:cut]), set(nodes[cut:])
        self.world.network.partition(side, others)
        names = "".join(sorted(self.world.node(a).name for a in side))
        self.world.note(f"network partitioned: {names} | the rest")
        assert self.world.nursery is not None
        self.world.nursery.start_soon(self._heal, self.rng.uniform(1.0, 20.0))

    async def _heal(self, after: float) -> None:
        await trio.sleep(after)
        self.world.network.heal()
        self.world.note("network healed")

    def cheat(self) -> None:
        """A node that is down has its key challenge a channel with an old state."""
        down = [node for node in self.world.nodes if not node.up and node.log is None]
        busy = self.busy_ledgers()
        candidates = [
            (node, ledger)
            for node in down
            for ledger in self.ledgers
            if node in ledger.ends and ledger.channel_id not in busy
        ]
        if not candidates:
            return
        node, ledger = self.rng.choice(candidates)
        with EventLog.open(node.home / "log", read_only=True) as log:
            states = supported_states_in(log, ledger.channel_id)
        chain = self.world.chain
        record, finalizes_at, _ = unpack_status(
            chain.state.status.get(ledger.channel_id, bytes(32))
        )
        stale = [s for s in states[:-1] if s.state.turn_num >= max(record, 1) and finalizes_at == 0]
        if not stale:
            return
        candidate = self.rng.choice(stale)
        latest = states[-1].state.turn_num
        self.world.note(
            f"{node.name}'s key challenges 0x{ledger.channel_id.hex()[:8]} with turn"
            f" {candidate.state.turn_num} (latest {latest})"
        )
        service = SimChainService(chain, node.address)
        signature = node.signer.sign_challenge(candidate.state)

        async def challenging() -> None:
            try:
                await service.challenge(candidate, signature)
            except ChainError as error:
                self.world.note(f"the stale challenge failed: {error}")

        assert self.world.nursery is not None
        self.world.nursery.start_soon(challenging)


def _balance(ledger: Ledger, party: SimNode) -> int | None:
    """``party``'s allocation in ``ledger`` after every queued proposal, as an end that is
    up sees it (None: neither can say)."""
    for end in ledger.ends:
        if end.engine is None:
            continue
        runtime = end.engine.ledger_runtime(ledger.channel_id)
        if runtime is None:
            continue
        _, outcome = runtime.latest()
        return outcome.leader.amount if party is ledger.leader else outcome.follower.amount
    return None
