"""Write the conformance suite's golden cases (tests/derive/golden/).

Run `python -m tests.derive.make_golden` from the project root after changing a
scenario or a rule; the expected answers come from the Python oracles
(node.derive.ReferenceFold and tests/derive/payments_oracle.py), and
tests/derive/test_derive_golden.py checks the files still match them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from node.derive import RecordRejectedError, ReferenceFold, frame_records
from node.log import EventLog
from node.proto import derive_pb2, log_pb2
from tests.derive.derive_strategies import (
    ASSETS,
    accepted_state,
    all_queries,
    blocks_reverted,
    channel_spec,
    u256,
)
from tests.derive.payments_oracle import PaymentsOracle

GOLDEN = Path(__file__).resolve().parent / "golden"


def _chain(time_s: int) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord()
    record.chain_event.block_number = time_s - 1000
    record.chain_event.block_time_s = time_s
    return record


def _deposit(channel_id: bytes, amount: int, time_s: int) -> log_pb2.LogRecord:
    record = _chain(time_s)
    record.chain_event.deposited.channel_id = channel_id
    record.chain_event.deposited.asset = ASSETS[0]
    record.chain_event.deposited.destination_holdings = u256(amount)
    return record


def _voucher(channel_id: bytes, amount: int, *, sent: bool) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord()
    record.accepted_voucher.sent = sent
    record.accepted_voucher.voucher.channel_id = channel_id
    record.accepted_voucher.voucher.amount = u256(amount)
    record.accepted_voucher.voucher.signature = b"\x1b" * 65
    return record


def direct_fund() -> list[log_pb2.LogRecord]:
    """Prefund signed by each in turn, both deposits, postfund: an open channel."""
    spec = channel_spec(0, 2)
    return [
        accepted_state(spec, turn=0, is_final=False, amounts=[5, 5], signers={0}),
        accepted_state(spec, turn=0, is_final=False, amounts=[5, 5], signers={1}),
        _deposit(spec.channel_id, 5, 2000),
        _deposit(spec.channel_id, 10, 2001),
        accepted_state(spec, turn=1, is_final=False, amounts=[5, 5], signers={0, 1}),
    ]


def ledger_and_payments() -> list[log_pb2.LogRecord]:
    """A ledger channel guaranteeing a virtual channel, and vouchers both ways."""
    ledger, virtual, incoming = channel_spec(1, 2), channel_spec(2, 3), channel_spec(3, 2)
    records = [
        accepted_state(ledger, turn=3, is_final=False, amounts=[7, 3, 10], signers={0, 1}),
        accepted_state(virtual, turn=1, is_final=False, amounts=[10, 0], signers={0, 1, 2}),
        accepted_state(incoming, turn=1, is_final=False, amounts=[4, 0], signers={0, 1}),
    ]
    for amount in (1, 2, 2, 5):
        records.append(_voucher(virtual.channel_id, amount, sent=True))
    for amount in (3, 1, 4):
        records.append(_voucher(incoming.channel_id, amount, sent=False))
    return records


def close_and_defund() -> list[log_pb2.LogRecord]:
    """A final state signed by one (closing), by both (finalized), then defunded."""
    spec = channel_spec(4, 2)
    updated = _chain(3000)
    updated.chain_event.allocation_updated.channel_id = spec.channel_id
    updated.chain_event.allocation_updated.asset = ASSETS[0]
    updated.chain_event.allocation_updated.initial_holdings = u256(10)
    updated.chain_event.allocation_updated.final_holdings = u256(0)
    concluded = _chain(2999)
    concluded.chain_event.concluded.channel_id = spec.channel_id
    concluded.chain_event.concluded.finalizes_at = 2999
    return [
        accepted_state(spec, turn=1, is_final=False, amounts=[5, 5], signers={0, 1}),
        _deposit(spec.channel_id, 10, 2500),
        accepted_state(spec, turn=2, is_final=True, amounts=[6, 4], signers={0}),
        accepted_state(spec, turn=2, is_final=True, amounts=[6, 4], signers={1}),
        concluded,
        updated,
    ]


def challenges() -> list[log_pb2.LogRecord]:
    """One challenge that expires by block time, one that is cleared."""
    expiring, cleared = channel_spec(5, 2), channel_spec(6, 2)
    records = [
        accepted_state(expiring, turn=1, is_final=False, amounts=[1], signers={0, 1}),
        accepted_state(cleared, turn=1, is_final=False, amounts=[1], signers={0, 1}),
    ]
    for spec, finalizes_at in ((expiring, 4100), (cleared, 4200)):
        record = _chain(4000)
        record.chain_event.challenge_registered.channel_id = spec.channel_id
        record.chain_event.challenge_registered.finalizes_at = finalizes_at
        records.append(record)
    clear = _chain(4050)
    clear.chain_event.challenge_cleared.channel_id = cleared.channel_id
    clear.chain_event.challenge_cleared.new_turn_num_record = 2
    block = _chain(4150)
    block.chain_event.block_processed.block_number = 3150
    return [*records, clear, block]


def _challenge(
    spec_id: bytes, candidate: log_pb2.LogRecord | None, finalizes_at: int, time_s: int
) -> log_pb2.LogRecord:
    record = _chain(time_s)
    registered = record.chain_event.challenge_registered
    registered.channel_id = spec_id
    registered.finalizes_at = finalizes_at
    if candidate is not None:
        registered.candidate.CopyFrom(candidate.accepted_state.signed_state)
    return record


def disputes() -> list[log_pb2.LogRecord]:
    """Challenges with candidates: cleared, replaced, expired; reclaims out of a ledger."""
    ledger, virtual, bare = channel_spec(7, 2), channel_spec(8, 3), channel_spec(9, 2)
    ledger_old = accepted_state(ledger, turn=2, is_final=False, amounts=[8, 2, 10], signers={0, 1})
    ledger_new = accepted_state(ledger, turn=3, is_final=False, amounts=[7, 3, 10], signers={0, 1})
    postfund = accepted_state(virtual, turn=1, is_final=False, amounts=[10, 0], signers={0, 1, 2})
    redeemed = accepted_state(virtual, turn=2, is_final=False, amounts=[6, 4], signers={2})
    clear = _chain(5010)
    clear.chain_event.challenge_cleared.channel_id = ledger.channel_id
    clear.chain_event.challenge_cleared.new_turn_num_record = 3
    block = _chain(5100)
    block.chain_event.block_processed.block_number = 4100
    reclaims = []
    for time_s in (5110, 5111):
        reclaim = _chain(time_s)
        reclaim.chain_event.reclaimed.channel_id = ledger.channel_id
        reclaims.append(reclaim)
    return [
        ledger_new,
        postfund,
        accepted_state(bare, turn=1, is_final=False, amounts=[1], signers={0, 1}),
        _challenge(ledger.channel_id, ledger_old, 5060, 5000),
        clear,
        _challenge(ledger.channel_id, ledger_new, 5080, 5020),
        _challenge(virtual.channel_id, postfund, 5090, 5030),
        _challenge(virtual.channel_id, redeemed, 5095, 5035),
        _challenge(bare.channel_id, None, 5200, 5040),
        block,
        *reclaims,
    ]


def reorg() -> list[log_pb2.LogRecord]:
    """A reorganisation orphans a deposit, a challenge and the only event of a channel;
    the voucher stays, chain time goes back, the deposit is mined again later."""
    spec, stranger = channel_spec(40, 2), channel_spec(41, 2)
    postfund = accepted_state(spec, turn=1, is_final=False, amounts=[5, 5], signers={0, 1})
    block = _chain(6003)
    block.chain_event.block_processed.block_number = 5003
    return [
        postfund,
        _deposit(spec.channel_id, 5, 6000),
        _deposit(spec.channel_id, 10, 6001),
        _challenge(spec.channel_id, postfund, 6002, 6002),
        _deposit(stranger.channel_id, 3, 6002),
        _voucher(spec.channel_id, 2, sent=True),
        block,
        blocks_reverted(5001),
        _deposit(spec.channel_id, 10, 6004),
    ]


def many_channels() -> list[log_pb2.LogRecord]:
    """300 channels: a listing takes two pages."""
    return [
        accepted_state(channel_spec(10 + n, 1), turn=0, is_final=False, amounts=[n], signers={0})
        for n in range(300)
    ]


def sequence_gap() -> list[log_pb2.LogRecord]:
    """Record 3 claims seq 4: the module must refuse it and stop at seq 2."""
    records = stored(direct_fund()[:3])
    records[2].seq = 4
    return records


SCENARIOS: dict[str, Callable[[], list[log_pb2.LogRecord]]] = {
    "direct_fund": direct_fund,
    "ledger_and_payments": ledger_and_payments,
    "close_and_defund": close_and_defund,
    "challenges": challenges,
    "disputes": disputes,
    "reorg": reorg,
    "many_channels": many_channels,
    "sequence_gap": sequence_gap,
}


def stored(records: list[log_pb2.LogRecord]) -> list[log_pb2.LogRecord]:
    """The records as the event log stores them (log.proto): numbered from 1, each with
    its kind, format version 1 and the hash of the record before it."""
    if records and records[0].seq:
        return records  # stored already (sequence_gap breaks a stored log on purpose)
    with tempfile.TemporaryDirectory() as directory, EventLog.open(Path(directory)) as log:
        log.append_batch(records)
        return list(log.read())


def scenario_records(name: str) -> list[log_pb2.LogRecord]:
    """The records of a scenario, as stored."""
    return stored(SCENARIOS[name]())


def expected(
    records: list[log_pb2.LogRecord],
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """The golden queries and answers, and the rejection if the log is refused."""
    reference, payments = ReferenceFold(), PaymentsOracle()
    rejects: dict[str, int] | None = None
    for record in records:
        try:
            reference.apply(record)
            payments.apply(record)
        except RecordRejectedError as error:
            rejects = {"code": error.code, "cursor": reference.cursor}
            break
    queries = all_queries(reference)
    if len(reference.channels) > 20:  # keep the files small: a few channels in full
        queries = queries[:3] + queries[len(reference.channels) :]
    queries.append(derive_pb2.Query(list_counterparties=derive_pb2.ListCounterparties()))
    if len(reference.channels) > 256:
        first_page = reference.query(queries[-5])
        after = first_page.channels.next_after
        queries.append(derive_pb2.Query(list_channels=derive_pb2.ListChannels(after=after)))
    items = []
    for query in queries:
        oracle = payments if query.WhichOneof("query") == "list_counterparties" else reference
        items.append(
            {
                "query": json_format.MessageToDict(query),
                "expect": json_format.MessageToDict(oracle.query(query)),
            }
        )
    return items, rejects


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for name, scenario in SCENARIOS.items():
        records = scenario_records(name)
        queries, rejects = expected(records)
        spec: dict[str, object] = {"description": (scenario.__doc__ or "").strip()}
        if rejects is not None:
            spec["rejects"] = rejects
        spec["queries"] = queries
        (GOLDEN / f"{name}.batch").write_bytes(
            frame_records(record.SerializeToString() for record in records)
        )
        (GOLDEN / f"{name}.json").write_text(json.dumps(spec, indent=1) + "\n")
        print(f"wrote {name}: {len(records)} records, {len(queries)} queries")


if __name__ == "__main__":
    main()
