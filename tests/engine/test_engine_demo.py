"""The devnet demo runs to the end: three node processes, two channels, one settled."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.engine_processes import PROJECT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_demo_funds_settles_and_verifies(tmp_path: Path) -> None:
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
    assert "done funding Alice–Irene on chain" in out
    assert "done funding Irene–Bob on chain" in out
    assert "DEFUNDED" in out
    assert "Stopped the devnet." in out
    # Final on-chain balances: each node started with 1000 ETH; Alice got her 5 back,
    # Irene has 3 still in Irene–Bob, Bob 2; only gas is missing besides.
    balances = {
        name: float(eth)
        for name, eth in re.findall(
            r"│ (Alice|Irene|Bob)\s+│ 0x[0-9a-fA-F]{40} │\s+([\d.]+) │", out
        )
    }
    assert set(balances) == {"Alice", "Irene", "Bob"}, out[-3000:]
    assert 999.99 < balances["Alice"] < 1000
    assert 996.99 < balances["Irene"] < 997
    assert 997.99 < balances["Bob"] < 998
    assert not (tmp_path / "demo" / "chain" / "devnet.json").exists()
