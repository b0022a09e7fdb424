"""Benchmark the derivation path: RocksDB log -> batches -> the reference WASM module.

Usage:
    python scripts/bench_derive.py [--records 1000000] [--tail 10000] [--dir DIR]

Writes a realistic log (states, vouchers, chain events, acknowledgements over
2,000 two-party channels), times a full replay through wasm/channels.wasm from
RocksDB (best and median of --replays runs: the machine may be shared), then a
restart: open the log, load the module (compiled-artifact cache warm), restore
the newest snapshot and replay a tail (median of 5). The last line is JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from node.core.constants import log_batch_records_max  # noqa: E402
from node.derive import DeriveModule, Deriver, instance_at, totals  # noqa: E402
from node.log import EventLog  # noqa: E402
from node.proto import log_pb2, nitro_pb2  # noqa: E402

CHANNELS = 2000
MODULE = ROOT / "wasm" / "channels.wasm"


def _fixed(number: int) -> nitro_pb2.FixedPart:
    return nitro_pb2.FixedPart(
        participants=[hashlib.sha256(b"a%d" % number).digest()[:20], b"\x42" * 20],
        channel_nonce=number,
        app_definition=b"\x0a" * 20,
        challenge_duration=86400,
    )


def _state_payload(number: int, turn: int, signers: tuple[int, ...]) -> bytes:
    fixed = _fixed(number)
    state = nitro_pb2.State(fixed=fixed, turn_num=turn)
    exit_ = state.outcome.add(asset=bytes(20))
    exit_.allocations.add(destination=b"\x01" * 32, amount=(1000 - turn).to_bytes(32, "big"))
    exit_.allocations.add(destination=b"\x02" * 32, amount=turn.to_bytes(32, "big"))
    record = log_pb2.LogRecord()
    accepted = record.accepted_state
    accepted.channel_id = hashlib.sha256(fixed.SerializeToString()).digest()
    accepted.state_hash = hashlib.sha256(state.SerializeToString()).digest()
    accepted.signed_state.state.CopyFrom(state)
    for signer in signers:
        accepted.signed_state.signatures.add(participant_index=signer, signature=b"\x1c" * 65)
    return record.SerializeToString()


def _payloads(count: int) -> list[bytes]:
    """A deterministic realistic mix: ~40 % vouchers, ~35 % states, ~10 % chain, rest acks."""
    ids = [hashlib.sha256(_fixed(n).SerializeToString()).digest() for n in range(CHANNELS)]
    turns = [0] * CHANNELS
    vouchers = [0] * CHANNELS
    payloads: list[bytes] = []
    number = 0
    while len(payloads) < count:
        channel = number % CHANNELS
        step = (number // CHANNELS) % 20
        number += 1
        if step < 7:
            turns[channel] += step % 2  # one signer, then the other: supported turns
            payloads.append(_state_payload(channel, turns[channel], (step % 2,)))
        elif step < 9:
            record = log_pb2.LogRecord()
            event = record.chain_event
            event.block_number = number
            event.block_time_s = 1_700_000_000 + number
            event.deposited.channel_id = ids[channel]
            event.deposited.asset = bytes(20)
            event.deposited.destination_holdings = (step * 500).to_bytes(32, "big")
            payloads.append(record.SerializeToString())
        elif step < 17:
            vouchers[channel] += 1
            record = log_pb2.LogRecord()
            record.accepted_voucher.sent = channel % 2 == 0
            record.accepted_voucher.voucher.channel_id = ids[channel]
            record.accepted_voucher.voucher.amount = vouchers[channel].to_bytes(32, "big")
            record.accepted_voucher.voucher.signature = b"\x1b" * 65
            payloads.append(record.SerializeToString())
        else:
            record = log_pb2.LogRecord()
            record.acknowledgement.peer = b"\x42" * 20
            record.acknowledgement.message_ids.extend([number, number + 1])
            payloads.append(record.SerializeToString())
    return payloads


def write_log(path: Path, count: int) -> float:
    started = time.perf_counter()
    payloads = _payloads(count)
    with EventLog.open(path) as log:
        for start in range(0, count, log_batch_records_max):
            log.append_payloads(payloads[start : start + log_batch_records_max], time_ms=1)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=10_000)
    parser.add_argument("--replays", type=int, default=3, help="full replays to time")
    parser.add_argument("--dir", type=Path, default=None, help="work here (default: a temp dir)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = options.dir or Path(scratch)
        log_path, cache = work / "log", work / "derive-cache"
        written_s = write_log(log_path, options.records)
        print(f"wrote {options.records} records in {written_s:.1f} s")
        module = DeriveModule.from_file(MODULE, cache_dir=cache)
        with EventLog.open(log_path) as log:
            replays = []
            for _ in range(options.replays):
                started = time.perf_counter()
                instance, cursor = instance_at(module, log, None)
                replays.append(time.perf_counter() - started)
                assert cursor == options.records
                assert totals(instance).records == options.records
            replay_s, replay_median_s = min(replays), statistics.median(replays)
            print(
                f"replay of {options.records} records: best {replay_s:.2f} s "
                f"({options.records / replay_s:,.0f} records/s), median {replay_median_s:.2f} s "
                f"({options.records / replay_median_s:,.0f} records/s) of {len(replays)}"
            )
            tail_start = options.records - options.tail
            snapshot_instance, _ = instance_at(module, log, tail_start)
            blob = snapshot_instance.snapshot()
            log.put_snapshot(module.sha256, tail_start, blob)
            print(f"snapshot at {tail_start}: {len(blob):,} bytes")
        restarts = []
        for _ in range(5):
            started = time.perf_counter()
            with EventLog.open(log_path) as log:
                restarted = DeriveModule.from_file(MODULE, cache_dir=cache)
                deriver = Deriver(log, restarted)
                deriver.catch_up()
                restarts.append((time.perf_counter() - started) * 1000)
                assert deriver.cursor == options.records
        restart_ms = statistics.median(restarts)
        print(
            f"restart (open log, load module, restore, replay {options.tail}): "
            f"median {restart_ms:.1f} ms of {[round(r, 1) for r in restarts]}"
        )
        figures = {
            "records": options.records,
            "replay_records_per_s": round(options.records / replay_s),
            "replay_records_per_s_median": round(options.records / replay_median_s),
            "restart_ms": round(restart_ms, 1),
            "tail_records": options.tail,
            "snapshot_bytes": len(blob),
        }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
