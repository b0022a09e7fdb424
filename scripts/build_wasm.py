"""Build the derivation modules in wasm/ from their sources, reproducibly.

Usage:
    python scripts/build_wasm.py           # rebuild wasm/*.wasm and wasm/examples/*.wasm
    python scripts/build_wasm.py --check   # rebuild in a scratch dir; exit 1 if the
                                           # committed .wasm files differ

Each module is built from a copy of its sources in a fresh directory with its
own empty Zig cache, by the pinned ziglang package (Zig for wasm/src/, its clang,
`zig cc`, for the C example in wasm/examples/), so the bytes depend on the
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
EXAMPLES = WASM / "examples"
ZIG_VERSION = "0.15.2"
# module name -> its root source file in wasm/src/.
MODULES = {"channels": "channels.zig", "payments": "payments.zig"}
# example modules in other languages -> their source in wasm/examples/.
C_MODULES = {"kinds": "kinds.c"}
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


C_FLAGS = (
    "-target",
    "wasm32-freestanding",
    "-mcpu=lime1",
    "-O2",
    "-nostdlib",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wl,--no-entry",
    "-Wl,--strip-all",
    "-Wl,-z,stack-size=65536",
)


def zig_version() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def _environment(work: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment["ZIG_GLOBAL_CACHE_DIR"] = str(work / "cache-global")
    environment["ZIG_LOCAL_CACHE_DIR"] = str(work / "cache-local")
    return environment


def _exports() -> list[str]:
    return [f"--export={export}" for export in EXPORTS + EXPORTS_OUT + EXPORTS_TABLES]


def build_one(name: str, scratch: Path) -> bytes:
    """Build module ``name`` in ``scratch`` and return its bytes."""
    work = scratch / name
    if name in C_MODULES:
        shutil.copytree(EXAMPLES, work / "src", ignore=shutil.ignore_patterns("*.wasm"))
        command = [
            sys.executable, "-m", "ziglang", "cc", f"src/{C_MODULES[name]}", *C_FLAGS,
            *(f"-Wl,{export}" for export in _exports()), "-o", f"{name}.wasm",
        ]  # fmt: skip
    else:
        shutil.copytree(SOURCES, work / "src")
        command = [
            sys.executable, "-m", "ziglang", "build-exe", f"src/{MODULES[name]}", *FLAGS,
            *_exports(), f"-femit-bin={name}.wasm",
        ]  # fmt: skip
    result = subprocess.run(
        command, cwd=work, env=_environment(work), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"zig build of {name} failed:\n{result.stderr}")
    return (work / f"{name}.wasm").read_bytes()


def target_of(name: str) -> Path:
    """Where module ``name`` is committed."""
    return (EXAMPLES if name in C_MODULES else WASM) / f"{name}.wasm"


def build_all() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(2) as pool:
        names = [*MODULES, *C_MODULES]
        futures = {name: pool.submit(build_one, name, Path(scratch)) for name in names}
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
        target = target_of(name)
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
