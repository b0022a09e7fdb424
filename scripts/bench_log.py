"""Benchmark the event log: synced batch appends, then reading everything back.

Usage:
    python scripts/bench_log.py [--records 1000000] [--batch 1000]

Appends ``--records`` realistic records (about 200 stored bytes each: vouchers,
acknowledgements, chain events, submitted transactions, sent messages) in
batches of ``--batch``, each batch one write with one fsync, through the fast
path ``EventLog.append_payloads``; a smaller run measures ``append_batch`` with
``LogRecord`` messages. Reads go through ``read_raw`` (the path the derivation
host uses) and, for reference, ``read`` (which also parses). Prints figures, and
as its last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from node.log import EventLog
from node.proto import log_pb2, nitro_pb2, wire_pb2

TIME_MS = 1_764_000_000_000


def _bytes(rng: random.Random, count: int) -> bytes:
    return rng.randbytes(count)


def sample_record(rng: random.Random, index: int) -> log_pb2.LogRecord:
    """One realistic record (payload only), varied by ``index``."""
    choice = index % 5
    if choice == 0:
        voucher = nitro_pb2.Voucher(
            channel_id=_bytes(rng, 32), amount=_bytes(rng, 32), signature=_bytes(rng, 65)
        )
        return log_pb2.LogRecord(accepted_voucher=log_pb2.AcceptedVoucher(voucher=voucher))
    if choice == 1:
        ids = [rng.randrange(1, 2**40) for _ in range(rng.randrange(8, 24))]
        return log_pb2.LogRecord(
            received_messages=log_pb2.ReceivedMessages(peer=_bytes(rng, 20), message_ids=ids)
        )
    if choice == 2:
        event = log_pb2.ChainEvent(
            block_number=rng.randrange(2**24),
            log_index=rng.randrange(64),
            tx_hash=_bytes(rng, 32),
            block_time_s=1_764_000_000,
            allocation_updated=log_pb2.AllocationUpdated(
                channel_id=_bytes(rng, 32),
                asset=_bytes(rng, 20),
                initial_holdings=_bytes(rng, 32),
                final_holdings=_bytes(rng, 32),
            ),
        )
        return log_pb2.LogRecord(chain_event=event)
    if choice == 3:
        submitted = log_pb2.SubmittedTransaction(
            objective_id="DirectFunding-0x" + _bytes(rng, 32).hex(),
            tx_kind=log_pb2.TRANSACTION_KIND_DEPOSIT,
            channel_id=_bytes(rng, 32),
            tx_hash=_bytes(rng, 32),
            nonce=rng.randrange(2**20),
        )
        return log_pb2.LogRecord(submitted_transaction=submitted)
    envelope = wire_pb2.Envelope(
        id=index,
        sender=_bytes(rng, 20),
        recipient=_bytes(rng, 20),
        payloads=[wire_pb2.Payload(objective_id="VirtualFund-0x" + _bytes(rng, 8).hex())],
    )
    envelope.payloads[0].ack.message_ids.extend(range(index, index + 8))
    return log_pb2.LogRecord(
        sent_message=log_pb2.SentMessage(peer=_bytes(rng, 20), envelope=envelope)
    )


def bench_append_payloads(log: EventLog, payloads: Sequence[bytes], total: int) -> float:
    """Seconds to append ``total`` records in batches of ``len(payloads)``."""
    started = time.perf_counter()
    for _ in range(total // len(payloads)):
        log.append_payloads(payloads, time_ms=TIME_MS)
    return time.perf_counter() - started


def bench_append_batch(log: EventLog, records: Sequence[log_pb2.LogRecord], total: int) -> float:
    started = time.perf_counter()
    for _ in range(total // len(records)):
        log.append_batch(records)
    return time.perf_counter() - started


def run(directory: Path, total: int, batch: int) -> dict[str, object]:
    """Run every measurement on a fresh log in ``directory``; returns the figures."""
    rng = random.Random(7)
    records = [sample_record(rng, index) for index in range(batch)]
    payloads = [record.SerializeToString() for record in records]
    for record in records:
        record.time_ms = TIME_MS
    with EventLog.open(directory / "log") as log:
        append_s = bench_append_payloads(log, payloads, total)
        stored_bytes = sum(len(value) for _, value in log.read_raw(1, batch))
        started = time.perf_counter()
        count_raw = sum(1 for _ in log.read_raw())
        read_raw_s = time.perf_counter() - started
        parse_total = min(total, 200_000)
        started = time.perf_counter()
        count_parsed = sum(1 for _ in log.read(1, parse_total))
        read_s = time.perf_counter() - started
        batch_total = min(total, 200_000)
        append_batch_s = bench_append_batch(log, records, batch_total)
        started = time.perf_counter()
        report = log.verify()
        verify_s = time.perf_counter() - started
    assert report.ok, report
    assert count_raw == total, count_raw
    assert count_parsed == parse_total, count_parsed
    return {
        "records": total,
        "batch_records": batch,
        "record_bytes_mean": round(stored_bytes / batch, 1),
        "append_path": "append_payloads",
        "append_per_s": round(total / append_s),
        "append_batch_per_s": round(batch_total / append_batch_s),
        "read_path": "read_raw",
        "read_per_s": round(count_raw / read_raw_s),
        "read_parsed_per_s": round(count_parsed / read_s),
        "verify_per_s": round(report.records_checked / verify_s),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the event log.")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args(argv)
    total = args.records - args.records % args.batch
    with tempfile.TemporaryDirectory(prefix="scnode-bench-log-") as directory:
        figures = run(Path(directory), total, args.batch)
    print(f"records: {total:,} of ~{figures['record_bytes_mean']} bytes, batches of {args.batch}")
    rows = (
        ("append_payloads, synced batches", "append_per_s"),
        ("append_batch (LogRecord), synced", "append_batch_per_s"),
        ("read_raw", "read_per_s"),
        ("read (parsed)", "read_parsed_per_s"),
        ("verify", "verify_per_s"),
    )
    for label, name in rows:
        print(f"{label + ':':<36}{figures[name]:>12,} records/s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
