"""Deterministic simulation of scnode: nodes running the real engine over a seeded
network and chain, with crashes, partitions and stale challenges (tests/sim/).

Usage:
    scripts/simulate.py --seed N [--steps K] [--keep DIR]
        one run: prints the seed, the steps and each node's log head (sequence number
        and hash); the same seed gives the same heads, bit for bit.
    scripts/simulate.py --seeds COUNT [--start N] [--jobs J] [--steps K]
        many runs (seeds N..N+COUNT-1) in J processes; each failure is printed with its
        seed; the last line is JSON (seeds run, failed, seeds per second).
    scripts/simulate.py --reduce N [--steps K] [--save]
        a failing seed cut to the shortest trace that fails alike (--save: written to
        tests/sim/traces/ as a regression test).
    scripts/simulate.py --trace FILE
        replay a trace.

Exit status: 0 every run passed, 1 a run failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's node/ and tests/, not an installed copy

from tests.sim.sim_reduce import TRACES, Trace, reduce, replay  # noqa: E402
from tests.sim.sim_run import SimFailure, SimResult, simulate  # noqa: E402


def show(result: SimResult) -> None:
    print(f"seed {result.seed} steps {result.actions}")
    for name, seq, digest in result.heads:
        print(f"  {name} {seq:6d} {digest}")
    print(f"  virtual {result.virtual_s:.0f} s, {json.dumps(result.stats)}")


def one(seed: int, steps: int | None, keep: Path | None) -> int:
    try:
        result = simulate(seed, steps, directory=keep, keep=keep is not None)
    except SimFailure as failure:
        print(failure, file=sys.stderr)
        return 1
    show(result)
    return 0


def _run_seed(job: tuple[int, int | None]) -> tuple[int, str | None, float]:
    seed, steps = job
    started = time.perf_counter()
    try:
        simulate(seed, steps)
    except SimFailure as failure:
        return seed, failure.problem[:400], time.perf_counter() - started
    return seed, None, time.perf_counter() - started


def many(start: int, count: int, jobs: int, steps: int | None) -> int:
    started = time.perf_counter()
    failed: list[int] = []
    work = [(seed, steps) for seed in range(start, start + count)]
    with multiprocessing.get_context("spawn").Pool(jobs, maxtasksperchild=20) as pool:
        for done, (seed, problem, seconds) in enumerate(pool.imap_unordered(_run_seed, work), 1):
            if problem is not None:
                failed.append(seed)
                print(f"FAIL seed {seed} ({seconds:.1f} s): {problem}", flush=True)
            if done % 50 == 0:
                rate = done / (time.perf_counter() - started)
                print(f"{done}/{count} seeds, {len(failed)} failed, {rate:.2f}/s", flush=True)
    elapsed = time.perf_counter() - started
    summary = {
        "seeds": count,
        "start": start,
        "failed": sorted(failed),
        "seconds": round(elapsed, 1),
        "seeds_per_second": round(count / elapsed, 3),
        "jobs": jobs,
    }
    print(json.dumps(summary))
    return 1 if failed else 0


def reduce_seed(seed: int, steps: int | None, save: bool) -> int:
    trace = reduce(seed, steps)
    if trace is None:
        print(f"seed {seed} passes: nothing to reduce")
        return 0
    print(trace.to_json())
    if save:
        TRACES.mkdir(exist_ok=True)
        path = TRACES / f"seed-{seed}-{trace.actions}.json"
        path.write_text(trace.to_json())
        print(f"saved {path.relative_to(ROOT)}")
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--seed", type=int, help="one run")
    mode.add_argument("--seeds", type=int, metavar="COUNT", help="many runs")
    mode.add_argument("--reduce", type=int, metavar="SEED", help="a failing seed's trace")
    mode.add_argument("--trace", type=Path, metavar="FILE", help="replay a trace")
    parser.add_argument("--steps", type=int, default=None, help="workload actions")
    parser.add_argument("--start", type=int, default=0, help="first seed of --seeds")
    parser.add_argument("--jobs", type=int, default=2, help="processes for --seeds")
    parser.add_argument("--keep", type=Path, default=None, help="keep the logs under DIR")
    parser.add_argument("--save", action="store_true", help="--reduce: save the trace")
    args = parser.parse_args()
    if args.seed is not None:
        return one(args.seed, args.steps, args.keep)
    if args.seeds is not None:
        return many(args.start, args.seeds, args.jobs, args.steps)
    if args.reduce is not None:
        return reduce_seed(args.reduce, args.steps, args.save)
    failure = replay(Trace.load(args.trace))
    if failure is not None:
        print(failure, file=sys.stderr)
        return 1
    print(f"{args.trace}: passes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
