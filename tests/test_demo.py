"""The main job, run as a user runs it: a real anvil, real logs, real payouts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.integration
def test_demo_funds_updates_and_settles_a_channel(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Both logs verify, each with the same number of records.
    verified = re.findall(r"(Alice|Bob): OK: (\d+) records checked", output)
    assert [name for name, _ in verified] == ["Alice", "Bob"]
    assert verified[0][1] == verified[1][1]
    # The off-chain update moved 1 ETH and 25 TOKEN from Alice to Bob.
    assert re.search(r"Alice\s.*│\s+998\.99\d+ │\s+999,975\.00", output), output
    assert re.search(r"Bob\s.*│\s+1000\.99\d+ │\s+1,000,025\.00", output), output
    # The derivation module sees the channel open after the postfund, defunded at the end.
    assert re.search(r"│ 0x[0-9a-f]{12} │ defunded │ 2\s+│ 3 ", output), output
    assert re.search(r"│ 0x[0-9a-f]{12} │ open\s+│ 2\s+│ 1 ", output), output
    assert "Stopped the devnet." in output
    assert not (tmp_path / "run").exists()
