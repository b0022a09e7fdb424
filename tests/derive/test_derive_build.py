"""The committed .wasm files are exactly what their Zig sources build to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_committed_modules_match_a_fresh_build() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_wasm.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok sha256 ") == 3  # channels, payments, the C example


@pytest.mark.slow
def test_zig_unit_tests_pass(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ziglang", "test", str(ROOT / "wasm" / "src" / "pb.zig")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={
            "ZIG_GLOBAL_CACHE_DIR": str(tmp_path / "g"),
            "ZIG_LOCAL_CACHE_DIR": str(tmp_path / "l"),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "All 2 tests passed" in result.stderr + result.stdout
