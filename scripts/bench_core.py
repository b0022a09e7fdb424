"""Throughput of the hot paths of node.core, one core, in operations per second.

Usage:
    python scripts/bench_core.py [--count N]

Prints one line per operation, then (last line) one JSON object with the
same figures. Each state/fixed part is built before timing, so hashing
figures are for values not hashed before (the hash caches are cold).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence

from node.core import (
    Allocation,
    FixedPart,
    Signer,
    SingleAssetExit,
    State,
    address_to_destination,
    channel_id,
    recover_state_signer,
    recover_voucher_signer,
    sign_state,
    sign_voucher,
    state_hash,
)

PRIVATE_KEY = bytes.fromhex("2d999770f7b5d49b694080f987b82bbc9fc9ac2b4dcc10b0f8aba7d700f69c6d")
PAYEE = "0xBBB676f9cFF8D242e9eaC39D063848807d3D1D94"
APP = "0x5e29E5Ab8EF33F050c7cc10B5a0456D975C5F88d"


def fixed_parts(count: int, payer: str) -> list[FixedPart]:
    """``count`` distinct two-party fixed parts."""
    return [FixedPart([payer, PAYEE], nonce, APP, 60) for nonce in range(count)]


def states(fixed: FixedPart, count: int) -> list[State]:
    """``count`` distinct states of one channel, a two-allocation outcome each."""
    outcome = [
        SingleAssetExit(
            "0x0000000000000000000000000000000000000000",
            [
                Allocation(address_to_destination(fixed.participants[0]), 10**18),
                Allocation(address_to_destination(PAYEE), 5 * 10**17),
            ],
        )
    ]
    return [State(fixed, b"", outcome, turn, False) for turn in range(count)]


def rate(operation: Callable[[int], object], count: int) -> float:
    """Calls of ``operation(i)`` for i in range(count), per second."""
    started = time.perf_counter()
    for index in range(count):
        operation(index)
    return count / (time.perf_counter() - started)


def measure(count: int) -> dict[str, float]:
    """All figures, rounded to whole operations per second."""
    signer = Signer(PRIVATE_KEY)
    fixed = fixed_parts(1, signer.address)[0]
    channel = channel_id(fixed)
    # Separate lists of fresh values per figure: hashes are cached on a value
    # after its first use, and a figure must not ride on another's cache.
    fresh_fixed = fixed_parts(count, signer.address)
    hash_states, sign_states, signer_states, recover_states = (
        states(fixed, count) for _ in range(4)
    )
    signatures = [sign_state(state, PRIVATE_KEY) for state in states(fixed, count)]
    vouchers = [sign_voucher(channel, amount, PRIVATE_KEY) for amount in range(count)]
    figures = {
        "channel_id_per_s": rate(lambda i: channel_id(fresh_fixed[i]), count),
        "state_hash_per_s": rate(lambda i: state_hash(hash_states[i]), count),
        "sign_state_per_s": rate(lambda i: sign_state(sign_states[i], PRIVATE_KEY), count),
        "signer_sign_state_per_s": rate(lambda i: signer.sign_state(signer_states[i]), count),
        "recover_state_signer_per_s": rate(
            lambda i: recover_state_signer(recover_states[i], signatures[i]), count
        ),
        "sign_voucher_per_s": rate(lambda i: sign_voucher(channel, i, PRIVATE_KEY), count),
        "signer_sign_voucher_per_s": rate(lambda i: signer.sign_voucher(channel, i), count),
        "recover_voucher_signer_per_s": rate(
            lambda i: recover_voucher_signer(channel, i, vouchers[i]), count
        ),
    }
    return {name: round(value) for name, value in figures.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="operations per figure")
    arguments = parser.parse_args(argv)
    figures = measure(arguments.count)
    for name, value in figures.items():
        print(f"{name.removesuffix('_per_s'):>28}: {value:>9,} /s")
    print(json.dumps({"count": arguments.count, **figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
