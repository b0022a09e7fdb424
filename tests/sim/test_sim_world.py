"""The simulated world end to end: a fixed set of seeds (CI's), the regression traces
under ``tests/sim/traces/``, replay bit for bit (in one process and in another), and
planted bugs the checks must catch, naming the seed and the step."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from node.engine import EngineState
from node.proto import log_pb2
from tests.sim.sim_reduce import TRACES, Trace, replay
from tests.sim.sim_run import PROJECT, SimFailure, simulate
from tests.sim.sim_world import SimParams

pytestmark = pytest.mark.slow

# Seeds CI runs on every change, chosen to cover the knobs: 2 to 5 nodes, reorgs
# deeper than the confirmations, crashes at 20% of actions, stale challenges, settlements
# on chain, partitions and a network losing 30% of its packets.
CI_SEEDS: Final = (2, 3, 7, 9, 12, 21, 25, 28, 30, 36)
REPLAY_SEED: Final = 7
REPLAY_ACTIONS: Final = 15
PLANTED_SEED: Final = 24  # two nodes, no faults beyond the network's
PLANTED_ACTIONS: Final = 12  # its channel still open when the network heals


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_a_ci_seed_keeps_every_invariant(seed: int) -> None:
    result = simulate(seed)
    assert result.stats["checks"] > 0
    assert all(seq > 0 for _, seq, _ in result.heads)


def _traces() -> list[Path]:
    return sorted(TRACES.glob("*.json"))


@pytest.mark.parametrize("path", _traces(), ids=lambda path: path.stem)
def test_a_regression_trace_passes(path: Path) -> None:
    trace = Trace.load(path)
    assert trace.found, f"{path.name}: say what it found and how it was fixed"
    failure = replay(trace)
    assert failure is None, str(failure)


def test_a_shorter_trace_keeps_every_other_parameter_of_its_seed() -> None:
    whole = SimParams.from_seed(REPLAY_SEED)
    short = SimParams.from_seed(REPLAY_SEED, 3)
    assert short.actions == 3
    assert dataclasses.replace(short, actions=whole.actions) == whole


def test_a_seed_replays_bit_for_bit_in_this_process_and_another() -> None:
    first = simulate(REPLAY_SEED, REPLAY_ACTIONS)
    second = simulate(REPLAY_SEED, REPLAY_ACTIONS)
    assert first.heads == second.heads
    assert first.stats == second.stats
    shown = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "scripts" / "simulate.py"),
            "--seed",
            str(REPLAY_SEED),
            "--steps",
            str(REPLAY_ACTIONS),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        timeout=300,
    )
    lines = shown.stdout.splitlines()
    assert lines[0] == f"seed {REPLAY_SEED} steps {REPLAY_ACTIONS}"
    heads = [tuple(line.split()) for line in lines[1 : 1 + len(first.heads)]]
    assert heads == [(name, str(seq), digest) for name, seq, digest in first.heads]


def test_a_payee_that_forgets_vouchers_fails_with_its_seed_and_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A planted bug: the payee's engine drops what it receives. The run must fail on
    "payments arrive", naming the seed and the step."""
    applied = EngineState._apply_voucher

    def forgetful(self: EngineState, accepted: log_pb2.AcceptedVoucher) -> None:
        if accepted.sent:
            applied(self, accepted)

    monkeypatch.setattr(EngineState, "_apply_voucher", forgetful)
    with pytest.raises(SimFailure) as failed:
        simulate(PLANTED_SEED, PLANTED_ACTIONS)
    failure = failed.value
    assert failure.seed == PLANTED_SEED
    assert failure.problem.startswith("payments arrive"), failure.problem
    assert f"seed {PLANTED_SEED}, action {failure.action}," in str(failure)
    assert f"scripts/simulate.py --seed {PLANTED_SEED} --steps {PLANTED_ACTIONS}" in str(failure)
