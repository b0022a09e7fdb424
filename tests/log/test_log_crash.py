"""Crash safety: a child appends in a loop and is SIGKILLed at random points.

After each kill the log must reopen as a gap-free prefix made of whole batches,
holding every batch whose append had returned, with a valid hash chain.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node.log import EventLog
from tests.log.log_crash_child import batch_sizes

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 6


def run_and_kill(log_path: Path, round_number: int, seed: int) -> list[int]:
    """Start a child, SIGKILL it after a random delay; the last seqs it reported."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.log.log_crash_child",
            str(log_path),
            str(round_number),
            str(seed),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    assert first, child.stderr.read() if child.stderr else b""
    time.sleep(random.Random(seed).uniform(0.0, 0.2))
    os.kill(child.pid, signal.SIGKILL)
    # Read through the same buffered reader as readline(): communicate() would read
    # the raw pipe and miss whatever readline() had already buffered.
    rest = child.stdout.read()
    child.wait(timeout=30)
    assert child.stderr is not None
    child.stderr.close()
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return [int(line) for line in (first + rest).split()]


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_leaves_a_durable_gap_free_prefix(tmp_path: Path) -> None:
    log_path = tmp_path / "log"
    end = 0  # the last seq of earlier rounds
    for round_number in range(ROUNDS):
        seed = 1000 + round_number
        reported = run_and_kill(log_path, round_number, seed)
        with EventLog.open(log_path, create=False) as log:
            last = log.last_seq
            assert last >= reported[-1]
            ends, cursor = [], end
            for size in batch_sizes(seed, len(reported) + 1000):
                cursor += size
                ends.append(cursor)
                if cursor >= last:
                    break
            assert reported == ends[: len(reported)]
            assert last == ends[-1], "the log ends inside a batch"
            tags = [record.rejected.reason for record in log.read(end + 1)]
            expected = [
                f"{round_number}/{batch}/{index}"
                for batch, size in enumerate(batch_sizes(seed, len(ends)))
                for index in range(size)
            ]
            assert tags == expected
            report = log.verify()
            assert report.ok, report
            assert report.records_checked == last
        end = last
