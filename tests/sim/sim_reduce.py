"""Failing seeds as short traces: the fewest workload actions, and the fewest kinds of
fault, that still fail the same check.

A trace is a seed, a number of actions and the fault kinds turned off (JSON under
``tests/sim/traces/``); ``simulate`` replays it exactly. A run of K actions makes the
same first K actions as a longer run of its seed, then heals and closes, so a shorter
trace is the same story cut earlier.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.sim.sim_run import SimFailure, simulate
from tests.sim.sim_world import SimParams

TRACES: Final = Path(__file__).resolve().parent / "traces"
FAULTS: Final = ("crash", "partition", "cheat", "settle")


@dataclass(frozen=True)
class Trace:
    """A replayable run.

    Attributes:
        seed: the seed.
        actions: the workload's length.
        off: fault kinds turned off (their chance set to 0).
        check: the check it failed when found ("" when it passes).
        found: what it found, and the fix (for the record).
    """

    seed: int
    actions: int
    off: tuple[str, ...] = ()
    check: str = ""
    found: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self) -> SimParams:
        params = SimParams.from_seed(self.seed, self.actions)
        return dataclasses.replace(params, **dict.fromkeys(self.off, 0.0))

    def to_json(self) -> str:
        body = {
            "seed": self.seed,
            "actions": self.actions,
            "off": list(self.off),
            "check": self.check,
            "found": self.found,
        }
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def load(cls, path: Path) -> Trace:
        body = json.loads(path.read_text())
        return cls(
            int(body["seed"]),
            int(body["actions"]),
            tuple(body.get("off", ())),
            str(body.get("check", "")),
            str(body.get("found", "")),
        )


def replay(trace: Trace) -> SimFailure | None:
    """Run ``trace``; its failure, or None."""
    try:
        simulate(trace.seed, params=trace.params())
    except SimFailure as failure:
        return failure
    return None


def check_of(failure: SimFailure) -> str:
    """The name of the check a failure broke ("liveness", "settlement", ...)."""
    return failure.problem.split(":", 1)[0]


def reduce(
    seed: int, actions: int | None = None, *, say: Callable[[str], None] = print
) -> Trace | None:
    """The shortest trace of ``seed`` that fails as the whole run does (None: it passes)."""
    whole = Trace(seed, SimParams.from_seed(seed, actions).actions)
    failure = replay(whole)
    if failure is None:
        return None
    check = check_of(failure)
    say(f"seed {seed}: {whole.actions} actions fail {check!r}")

    def fails(trace: Trace) -> bool:
        found = replay(trace)
        return found is not None and check_of(found) == check

    best = whole
    for length in _lengths(whole.actions):
        candidate = dataclasses.replace(whole, actions=length)
        if fails(candidate):
            best = candidate
            say(f"seed {seed}: {length} actions are enough")
            break
    for fault in FAULTS:
        candidate = dataclasses.replace(best, off=(*best.off, fault))
        if fails(candidate):
            best = candidate
            say(f"seed {seed}: fails without {fault}")
    return dataclasses.replace(best, check=check, found=failure.problem[:500])


def _lengths(actions: int) -> list[int]:
    """Shorter lengths to try, shortest first."""
    lengths, length = [], 1
    while length < actions:
        lengths.append(length)
        length = max(length + 1, length * 3 // 2)
    return lengths
