"""The engine's reads of the world outside its inputs: clocks, chance, threads.

Everything else the engine does is a function of its log and its inputs. These few
reads are not, so they go through one seam: ``engine_clock()`` answers them, with the
real clocks unless a simulation installed its own (``use_engine_clock``), so that a
seeded run under a mock clock writes the same records every time
(docs/adr/0010-simulation.md). Timers use ``trio.current_time()``, which is the mock
clock's already.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class EngineClock:
    """What the engine reads besides its inputs.

    Attributes:
        wall_ms: wall-clock milliseconds, written into records (``time_ms``) and
            compared with them (objective expiry).
        elapsed_s: a monotonic clock in seconds (rejection windows).
        work_s: a clock of the work done, in seconds (step time budgets).
        randbelow: a random integer below its argument (channel nonces).
        threads: whether a large write may leave the trio thread.
    """

    wall_ms: Callable[[], int] = _wall_ms
    elapsed_s: Callable[[], float] = time.monotonic
    work_s: Callable[[], float] = time.perf_counter
    randbelow: Callable[[int], int] = secrets.randbelow
    threads: bool = True


REAL_CLOCK = EngineClock()
_installed: list[EngineClock] = [REAL_CLOCK]


def engine_clock() -> EngineClock:
    """The clock the engine reads now (the real one unless a simulation installed one)."""
    return _installed[-1]


@contextmanager
def use_engine_clock(clock: EngineClock) -> Iterator[EngineClock]:
    """Make every engine of this process read ``clock`` until the block ends."""
    _installed.append(clock)
    try:
        yield clock
    finally:
        assert _installed[-1] is clock, "engine clocks are installed and removed in order"
        _installed.pop()
