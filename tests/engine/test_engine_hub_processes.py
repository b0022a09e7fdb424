"""The hub benchmark, small: nine node processes, channels through one hub, all paid.

scripts/bench_hub.py is what the issue's hub figures come from; this runs it with a few
channels so that a change that breaks it (or leaves a channel unopened or a payment
unreceived, which the script waits for) fails here rather than in a release.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_hub.py"
SIZES = (4, 12)
PAYMENTS_PER_CHANNEL = 50


@pytest.mark.slow
def test_the_hub_benchmark_opens_and_pays_every_channel(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--channels",
            ",".join(map(str, SIZES)),
            "--payments-per-channel",
            str(PAYMENTS_PER_CHANNEL),
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    figures = json.loads(completed.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == "hub"
    rows = figures["rows"]
    assert [row["channels"] for row in rows] == list(SIZES)
    assert [row["channels_open_at_hub"] for row in rows] == [SIZES[0], sum(SIZES)]
    for row in rows:
        assert row["channels_per_s"] > 0
        assert row["payments_per_s"] > 0
        assert row["hub_rss_mib"] > 0
    assert figures["size_ratio"] == SIZES[1] / SIZES[0]
