"""Build the derivation modules in wasm/ from their Zig sources, reproducibly.

Usage:
    python scripts/build_wasm.py           # rebuild wasm/*.wasm in place
    python scripts/build_wasm.py --check   # rebuild in a scratch dir; exit 1 if the
                                           # committed .wasm files differ

Each module is built from a copy of wasm/src/ in a fresh directory with its own
empty Zig cache, by the pinned ziglang package, so the bytes depend on the
sources and the compiler version only (docs/derive-abi.md, "Building").
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WASM = ROOT / "wasm"
SOURCES = WASM / "src"
ZIG_VERSION = "0.15.2"
# module name -> its root source file in wasm/src/.
MODULES = {"channels": "channels.zig", "payments": "payments.zig"}
EXPORTS = ("abi_version", "alloc", "apply_batch", "query", "snapshot", "restore")
EXPORTS_OUT = ("out_ptr", "out_len")
# The tables extension (docs/derive-abi.md, "Tables"): every module here has tables.
EXPORTS_TABLES = ("describe_tables",)
FLAGS = (
    "-target",
    "wasm32-freestanding",
    "-mcpu",
    "lime1",
    "-fno-entry",
    "-O",
    "ReleaseSafe",
    "-fstrip",
    "--stack",
    "65536",
)


def zig_version() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def build_one(name: str, scratch: Path) -> bytes:
    """Build module ``name`` in ``scratch`` and return its bytes."""
    work = scratch / name
    shutil.copytree(SOURCES, work / "src")
    environment = dict(os.environ)
    environment["ZIG_GLOBAL_CACHE_DIR"] = str(work / "cache-global")
    environment["ZIG_LOCAL_CACHE_DIR"] = str(work / "cache-local")
    command = [
        sys.executable,
        "-m",
        "ziglang",
        "build-exe",
        f"src/{MODULES[name]}",
        *FLAGS,
        *(f"--export={export}" for export in EXPORTS + EXPORTS_OUT + EXPORTS_TABLES),
        f"-femit-bin={name}.wasm",
    ]
    result = subprocess.run(command, cwd=work, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"zig build of {name} failed:\n{result.stderr}")
    return (work / f"{name}.wasm").read_bytes()


def build_all() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(build_one, name, Path(scratch)) for name in MODULES}
        return {name: future.result() for name, future in futures.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if wasm/*.wasm differ")
    options = parser.parse_args()
    version = zig_version()
    if version != ZIG_VERSION:
        print(f"zig {version} found, {ZIG_VERSION} required: other versions emit other bytes")
        return 1
    built = build_all()
    stale = []
    for name, wasm in built.items():
        target = WASM / f"{name}.wasm"
        digest = hashlib.sha256(wasm).hexdigest()
        if options.check:
            same = target.is_file() and target.read_bytes() == wasm
            print(f"{target.relative_to(ROOT)}: {'ok' if same else 'DIFFERS'} sha256 {digest}")
            if not same:
                stale.append(name)
        else:
            target.write_bytes(wasm)
            print(f"wrote {target.relative_to(ROOT)} ({len(wasm)} bytes, sha256 {digest})")
    if stale:
        print(f"stale modules: {', '.join(stale)}; run python scripts/build_wasm.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
