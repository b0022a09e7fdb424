"""Virtual time and a seeded scheduler: what makes a trio run a function of its seed.

``SimClock`` is trio's autojump clock with two changes. It jumps to the next deadline
as soon as every task waits (``autojump_threshold=0``), from inside
``deadline_to_sleep_time`` (trio only asks it when nothing can run). And every read
moves it on by one tick (2**-20 s), so that no two deadlines are ever equal: trio
breaks ties between equal deadlines by the ``id()`` of their cancel scopes, a memory
address, which differs from one process to the next.

``seeded_scheduler`` seeds the random stream trio's scheduler draws its task order
from, and turns on the deterministic mode trio uses under Hypothesis (each batch of
runnable tasks sorted by creation before it is shuffled). Trio 0.35 is pinned; these
two private names are read in one place only.

``sim_engine_clock`` is the engine's clock seam for a simulation: wall time from the
virtual clock, nonces from the seed, no worker threads (a thread would let the clock
jump while it runs).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import trio

from node.engine import EngineClock

TICK_S: Final = 2.0**-20
EPOCH_MS: Final = 1_700_000_000_000  # the virtual clock's zero, as wall-clock time
_FOREVER_S: Final = 86_400.0


class SimClock(trio.abc.Clock):
    """Virtual seconds from 0; jumps to the next deadline whenever every task waits."""

    def __init__(self) -> None:
        self._now = 0.0
        self.jumps = 0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        self._now += TICK_S
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        # Trio asks only when no task can run: time moves to the next deadline at once.
        if math.isinf(deadline):
            return _FOREVER_S  # nothing will ever wake: a deadlock, left to the caller's guard
        if deadline > self._now:
            self._now = deadline
            self.jumps += 1
        return 0.0


@contextmanager
def seeded_scheduler(seed: int) -> Iterator[None]:
    """Trio's task order drawn from ``seed`` until the block ends."""
    run = trio._core._run
    state = run._r.getstate()
    deterministic = run._ALLOW_DETERMINISTIC_SCHEDULING
    run._r.seed(seed)
    run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    try:
        yield
    finally:
        run._ALLOW_DETERMINISTIC_SCHEDULING = deterministic  # type: ignore[misc]
        run._r.setstate(state)


class WorkClock:
    """The engine's work clock in a simulation: each read costs ``read_s`` of work, so
    that step time budgets run out deterministically."""

    def __init__(self, read_s: float) -> None:
        self.read_s = read_s
        self._spent = 0.0

    def __call__(self) -> float:
        self._spent += self.read_s
        return self._spent


def sim_engine_clock(rng: random.Random, work_read_s: float) -> EngineClock:
    """The engine's clock seam for a run on ``SimClock``."""
    return EngineClock(
        wall_ms=lambda: EPOCH_MS + int(trio.current_time() * 1000),
        elapsed_s=trio.current_time,
        work_s=WorkClock(work_read_s),
        randbelow=rng.randrange,
        threads=False,
    )
