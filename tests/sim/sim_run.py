"""One simulated run from a seed: the world, the workload, the checks, and the digest
that a replay must reproduce bit for bit.

A run has four phases, all in virtual time:

1. the workload's actions, with faults (crashes, partitions, stale challenges, a lossy
   network, an unkind chain), the running checks every few seconds;
2. the network heals and every node comes back: within ``liveness_s`` every objective
   must end and every payment reach its payee;
3. everything still open is closed, by the payers and the ledgers' ends;
4. the end checks: nothing left on chain, everyone's coins where they belong, every
   log verified and equal to the reference fold.

``simulate`` returns each node's log head (sequence number and hash): two runs of one
seed give the same, in one process or another.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from node.derive import DeriveModule
from node.engine import CommandRefusedError, use_engine_clock
from tests.sim.sim_clock import SimClock, seeded_scheduler, sim_engine_clock
from tests.sim.sim_invariants import InvariantError, Invariants
from tests.sim.sim_workload import OPEN, Workload, status
from tests.sim.sim_world import SimParams, World

PROJECT: Final = Path(__file__).resolve().parents[2]
MODULE_PATH: Final = PROJECT / "wasm" / "channels.wasm"
CHECK_INTERVAL_S: Final = 5.0
CLOSE_ROUNDS_MAX: Final = 12
_module: DeriveModule | None = None


def derive_module() -> DeriveModule:
    """The reference derivation module, compiled once per process."""
    global _module
    if _module is None:
        _module = DeriveModule.from_file(MODULE_PATH)
    return _module


class SimFailure(Exception):
    """A check failed: the seed, the action and the run's story say where."""

    def __init__(
        self, seed: int, steps: int, action: int, time_s: float, problem: str, trace: list[str]
    ):
        self.seed = seed
        self.steps = steps
        self.action = action
        self.time_s = time_s
        self.problem = problem
        self.trace = trace
        tail = "\n".join(trace[-60:])
        super().__init__(
            f"seed {seed}, action {action}, t={time_s:.3f} s: {problem}\n"
            f"replay: scripts/simulate.py --seed {seed} --steps {steps}\n{tail}"
        )


@dataclass(frozen=True)
class SimResult:
    """What a run leaves.

    Attributes:
        seed: its seed.
        actions: workload actions run.
        heads: per node (name, last sequence number, head hash hex).
        virtual_s: virtual seconds the run took.
        stats: counts for the report (crashes, reorgs, messages, records...).
    """

    seed: int
    actions: int
    heads: tuple[tuple[str, int, str], ...]
    virtual_s: float
    stats: dict[str, int]

    @property
    def digest(self) -> str:
        return " ".join(f"{name}:{seq}:{digest[:16]}" for name, seq, digest in self.heads)


def simulate(
    seed: int,
    actions: int | None = None,
    *,
    params: SimParams | None = None,
    directory: Path | None = None,
    keep: bool = False,
) -> SimResult:
    """Run the world of ``seed`` (``actions``: the workload's length, else the seed's;
    ``params``: instead of the seed's, for a reduced trace; ``keep``: leave the nodes'
    logs in ``directory`` for a look afterwards).

    Raises:
        SimFailure: a check failed.
    """
    if params is None:
        params = SimParams.from_seed(seed, actions)
    assert params.seed == seed
    root = Path(tempfile.mkdtemp(prefix=f"sim-{seed}-", dir=directory or _scratch()))
    engine_rng = random.Random(f"engine {seed}")
    logging.getLogger("node").setLevel(logging.CRITICAL)
    try:
        with (
            seeded_scheduler(seed),
            use_engine_clock(sim_engine_clock(engine_rng, params.work_read_s)),
        ):
            return trio.run(_run, params, root, clock=SimClock())
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _scratch() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


async def _run(params: SimParams, root: Path) -> SimResult:
    world = World(params, root, derive_module())
    workload = Workload(world, random.Random(world.rng.getrandbits(64)))
    checks = Invariants(world, workload)
    try:
        async with trio.open_nursery() as nursery:
            world.nursery = nursery
            world.network.nursery = nursery
            nursery.start_soon(world.mine)
            for node in world.nodes:
                await world.start(node)
            nursery.start_soon(_check_often, checks)
            for action in range(params.actions):
                world.action = action
                await workload.act()
                await trio.sleep(world.rng.uniform(0, params.action_gap_s))
            world.action = params.actions
            await _heal(world, checks)
            await _close_everything(world, workload, checks)
            result = _result(world, checks)
            nursery.cancel_scope.cancel(reason="the run is over")
    except* InvariantError as group:
        problem = str(group.exceptions[0])
        raise SimFailure(
            params.seed, params.actions, world.action, trio.current_time(), problem, world.trace
        ) from None
    return result


async def _check_often(checks: Invariants) -> None:
    while True:
        await trio.sleep(CHECK_INTERVAL_S)
        checks.check()


def liveness_s(params: SimParams) -> float:
    """How long objectives may take once the network heals: settlements wait out
    challenges (twice: a ledger and what it guarantees), transactions their retries."""
    return 4.0 * params.challenge_duration_s + 300.0


async def _heal(world: World, checks: Invariants) -> None:
    world.note("the network heals; every node comes back")
    world.network.heal()
    for node in world.nodes:
        if not node.up and node.log is None:
            await world.start(node)
    deadline = trio.current_time() + liveness_s(world.params)
    while trio.current_time() < deadline:
        await trio.sleep(CHECK_INTERVAL_S)
        if _quiet(world):
            break
    await _all_up(world)
    checks.check()
    checks.check_liveness()
    checks.check_settlements()
    checks.check_payments_arrived()


def _quiet(world: World) -> bool:
    """Every node up, no objective running, no message unacknowledged."""
    for node in world.nodes:
        if not node.up:
            return False
        state = node.running().state
        if state.running or any(state.outbox.values()):
            return False
    return True


async def _all_up(world: World) -> None:
    for node in world.nodes:
        if not node.up:
            await node.stopped.wait()
            await world.start(node)


async def _close_everything(world: World, workload: Workload, checks: Invariants) -> None:
    world.note("closing everything")
    for _ in range(CLOSE_ROUNDS_MAX):
        asked = False
        for virtual in workload.virtuals:
            if status(virtual.payer, virtual.channel_id) == OPEN:
                engine = virtual.payer.running()
                virtual.payer.spawn(_quietly, engine.close_payment_channel, virtual.channel_id)
                asked = True
        if not asked:
            for ledger in workload.open_ledgers():
                engine = ledger.leader.running()
                ledger.leader.spawn(_quietly, engine.close_ledger_channel, ledger.channel_id)
                asked = True
        if not asked and not any(node.running().state.running for node in world.nodes):
            break
        await trio.sleep(4.0 * world.params.challenge_duration_s / CLOSE_ROUNDS_MAX + 30.0)
    checks.check()
    checks.check_liveness()
    checks.check_settled()


async def _quietly(call: Callable[..., Awaitable[object]], *args: object) -> None:
    with contextlib.suppress(CommandRefusedError):
        await call(*args)


def _result(world: World, checks: Invariants) -> SimResult:
    heads = []
    for node in world.nodes:
        log = node.log
        assert log is not None
        heads.append((node.name, log.last_seq, log.head_hash.hex()))
    stats = {
        "nodes": len(world.nodes),
        "ledgers": 0,
        "restarts": sum(node.restarts - 1 for node in world.nodes),
        "blocks": world.chain.head.number,
        "reorgs": world.chain.reorgs,
        "packets": world.network.sent,
        "lost": world.network.lost,
        "records": sum(seq for _, seq, _ in heads),
        "checks": checks.checks,
    }
    return SimResult(
        world.params.seed, world.params.actions, tuple(heads), trio.current_time(), stats
    )
