"""The devnet demo runs to the end: three node processes, two ledgers, 10,000 payments on a
virtual channel, everything settled on chain to the wei; then a stale challenge that
Irene's node answers by itself with a checkpoint, and her exit from that ledger."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.engine_processes import PROJECT

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ETH = 10**18
PAID = 10_000 * 10**13  # the demo's 10,000 payments of 0.00001 ETH
DISPUTE_PAID = ETH // 4  # what Alice pays Irene over the ledger they dispute
GAS_MAX = ETH // 1000  # far above what the demo's transactions cost on anvil


def balances(out: str, title: str) -> dict[str, float]:
    """A balances table of the demo's output: ETH by node."""
    table = out.split(title, 1)[1]
    found = re.findall(r"│ (Alice|Irene|Bob)\s+│ 0x[0-9a-fA-F]{40} │\s+([\d.]+) │", table)
    return {name: float(eth) for name, eth in found[:3]}


def test_demo_pays_settles_and_verifies(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "demo.py"), "--dir", str(tmp_path / "demo")],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    out = result.stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"demo": "ok"}
    assert out.count("verified") == 3
    for step in ("funding Alice–Irene on chain", "funding Irene–Bob on chain"):
        assert f"done {step}" in out
    for step in ("funding Alice → Bob", "closing Alice → Bob", "closing Alice–Irene"):
        assert f"done {step}" in out
    assert "10000/10000" in out
    # Four ledger views and three accounts, then two ledger views and three accounts in the
    # dispute, each checked to the wei by the demo itself.
    assert out.count("exact") == 12, out[-4000:]
    assert "WRONG" not in out
    assert out.count("DEFUNDED") == 4
    assert "Stopped the devnet." in out
    # Independently of the demo's own check: each node started with 1000 ETH; Alice paid
    # Bob 0.1 ETH through Irene; only gas is missing besides.
    before = balances(out, "balances before")
    after = balances(out, "balances after settlement")
    assert before == {"Alice": 1000.0, "Irene": 1000.0, "Bob": 1000.0}
    moved = {"Alice": -PAID / ETH, "Irene": 0.0, "Bob": PAID / ETH}
    for name, delta in moved.items():
        assert before[name] + delta - GAS_MAX / ETH < after[name] <= before[name] + delta
    # The dispute: Irene's node saw the stale challenge, checkpointed, and left the ledger.
    assert "channel_challenged, candidate turn 1, answer checkpoint" in out
    assert "done Irene defends the ledger" in out
    assert "paid out to Irene: 1.25 ETH" in out
    disputed = balances(out, "balances after the dispute")
    moved = {"Alice": -DISPUTE_PAID / ETH, "Irene": DISPUTE_PAID / ETH, "Bob": 0.0}
    for name, delta in moved.items():
        assert after[name] + delta - GAS_MAX / ETH < disputed[name] <= after[name] + delta
    assert disputed["Bob"] == after["Bob"]
    assert not (tmp_path / "demo" / "chain" / "devnet.json").exists()
