"""The engine's clock seam: real clocks by default, a simulation's while installed."""

from __future__ import annotations

import time

from node.engine import REAL_CLOCK, EngineClock, engine_clock, use_engine_clock
from node.engine._records import now_ms


def test_the_real_clock_is_the_default() -> None:
    assert engine_clock() is REAL_CLOCK
    assert abs(now_ms() - int(time.time() * 1000)) < 5_000
    assert REAL_CLOCK.threads
    assert 0 <= REAL_CLOCK.randbelow(10) < 10


def test_an_installed_clock_is_read_until_removed() -> None:
    fake = EngineClock(wall_ms=lambda: 42, randbelow=lambda bound: bound - 1, threads=False)
    with use_engine_clock(fake):
        assert engine_clock() is fake
        assert now_ms() == 42
        inner = EngineClock(wall_ms=lambda: 7)
        with use_engine_clock(inner):
            assert now_ms() == 7
        assert now_ms() == 42
    assert engine_clock() is REAL_CLOCK
