"""scripts/bench_flood.py in a small mode: 16 MiB of junk flooded at Bob while Alice
pays him. Its JSON line is well formed, what the junk made Bob log stays within 1% of
it, Bob stays up and answers, and his memory and queues stay bounded. Throughput and
RPC latency depend on the machine's load: the benchmark reports them, CI does not
judge them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from node.core import constants
from tests.engine.engine_processes import PROJECT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Enough that the bounded records (advice to the attacker, a window of rejections) are
# under 1% of the junk, as they are of 1 GiB.
JUNK_MIB = 16
RSS_MIB_GROWTH_MAX = 100
FIGURES = {
    "payments_per_s_unloaded": int,
    "payments_per_s_flood": int,
    "throughput_share": float,
    "junk_mib": float,
    "junk_envelopes": int,
    "log_bytes_per_junk_mib": int,
    "log_share_of_junk": float,
    "rss_mib_growth_peak": float,
    "rpc_ms_p99_flood": float,
    "queues_max": dict,
    "targets": dict,
}


def run_bench(directory: Path) -> tuple[str, dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "scripts" / "bench_flood.py"),
            *("--junk-mib", str(JUNK_MIB), "--payments", "500", "--rounds", "1"),
            *("--rpc-s", "1", "--dir", str(directory)),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    return result.stdout, json.loads(last)


def test_bench_flood_small(tmp_path: Path) -> None:
    out, figures = run_bench(tmp_path / "bench")
    assert figures["benchmark"] == "flood"
    for name, kind in FIGURES.items():
        assert isinstance(figures[name], kind), (name, figures[name])
    assert set(figures["targets"]) == {"throughput", "log_growth", "memory", "rpc_p99", "alive"}
    assert all(isinstance(met, bool) for met in figures["targets"].values())
    assert out.count(": met") + out.count(": MISSED") == 5  # each target printed
    assert figures["junk_mib"] >= JUNK_MIB - 0.5
    assert figures["junk_envelopes"] > 10_000
    assert figures["payments_per_s_flood"] > 0
    assert figures["targets"]["log_growth"], figures
    assert figures["log_share_of_junk"] <= 0.01
    assert figures["targets"]["alive"], figures
    assert figures["rss_mib_growth_peak"] <= RSS_MIB_GROWTH_MAX
    queues = figures["queues_max"]
    assert queues["engine_inputs"] <= constants.engine_inputs_max
    assert queues["deferred_envelopes"] <= 2 * constants.engine_deferred_envelopes_max
