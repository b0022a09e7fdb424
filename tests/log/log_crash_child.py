"""Child process of the crash test: append batches until killed.

Usage: python -m tests.log.log_crash_child LOG_PATH ROUND SEED

After each append returns (the batch is durable), writes the batch's last seq
as one line to stdout, unbuffered, so the parent knows what must survive.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from node.log import EventLog
from tests.log.log_samples import tagged_record

BATCHES_MAX = 100_000


def batch_sizes(seed: int, count: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(1, 300) for _ in range(count)]


def main() -> int:
    path, round_number, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with EventLog.open(path) as log:
        for batch, size in enumerate(batch_sizes(seed, BATCHES_MAX)):
            records = [tagged_record(f"{round_number}/{batch}/{index}") for index in range(size)]
            if batch % 2:
                seq_range = log.append_batch(records)
            else:
                payloads = [record.SerializeToString() for record in records]
                seq_range = log.append_payloads(payloads, time_ms=0)
            os.write(1, f"{seq_range.last}\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
