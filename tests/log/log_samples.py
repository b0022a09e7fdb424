"""Sample log records of every kind, and raw access to a log's RocksDB for tampering."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from google.protobuf.message import Message
from rocksdict import Options, Rdict

from node.log import KIND_BY_CASE
from node.proto import log_pb2, nitro_pb2, wire_pb2


def _signed_state(rng: random.Random) -> nitro_pb2.SignedState:
    fixed = nitro_pb2.FixedPart(
        participants=[rng.randbytes(20), rng.randbytes(20)],
        channel_nonce=rng.randrange(2**32),
        app_definition=rng.randbytes(20),
        challenge_duration=86_400,
    )
    exit_ = nitro_pb2.SingleAssetExit(
        asset=bytes(20),
        allocations=[
            nitro_pb2.Allocation(destination=rng.randbytes(32), amount=rng.randbytes(32)),
            nitro_pb2.Allocation(destination=rng.randbytes(32), amount=rng.randbytes(32)),
        ],
    )
    state = nitro_pb2.State(fixed=fixed, outcome=[exit_], turn_num=rng.randrange(2**20))
    signatures = [
        nitro_pb2.ParticipantSignature(participant_index=index, signature=rng.randbytes(65))
        for index in range(2)
    ]
    return nitro_pb2.SignedState(state=state, signatures=signatures)


def _watch(rng: random.Random) -> log_pb2.Watch:
    request = wire_pb2.WatchRequest(
        supported=_signed_state(rng),
        counter=_signed_state(rng),
        counter_signature=rng.randbytes(65),
    )
    return log_pb2.Watch(channel=log_pb2.WatchedChannel(client=rng.randbytes(20), request=request))


def payload_record(case: str, rng: random.Random) -> log_pb2.LogRecord:
    """A record holding only a realistic payload of the given case."""
    builders: dict[str, Callable[[], Message]] = {
        "accepted_state": lambda: log_pb2.AcceptedState(
            channel_id=rng.randbytes(32),
            state_hash=rng.randbytes(32),
            signed_state=_signed_state(rng),
        ),
        "chain_event": lambda: log_pb2.ChainEvent(
            block_number=rng.randrange(2**24),
            log_index=rng.randrange(64),
            tx_hash=rng.randbytes(32),
            deposited=log_pb2.Deposited(
                channel_id=rng.randbytes(32),
                asset=bytes(20),
                destination_holdings=rng.randbytes(32),
            ),
        ),
        "command": lambda: log_pb2.Command(
            objective_id=f"DirectDefunding-0x{rng.randbytes(32).hex()}",
            close_ledger_channel=log_pb2.CloseChannel(channel_id=rng.randbytes(32)),
        ),
        "sent_message": lambda: log_pb2.SentMessage(
            peer=rng.randbytes(20),
            envelope=wire_pb2.Envelope(
                id=rng.randrange(2**40), sender=rng.randbytes(20), recipient=rng.randbytes(20)
            ),
        ),
        "acknowledgement": lambda: log_pb2.Acknowledgement(
            peer=rng.randbytes(20), message_ids=[rng.randrange(2**40) for _ in range(5)]
        ),
        "submitted_transaction": lambda: log_pb2.SubmittedTransaction(
            objective_id="DirectFunding-0x" + rng.randbytes(32).hex(),
            tx_kind=log_pb2.TRANSACTION_KIND_DEPOSIT,
            channel_id=rng.randbytes(32),
            tx_hash=rng.randbytes(32),
            nonce=rng.randrange(1000),
            amount=rng.randbytes(32),
        ),
        "rejected": lambda: log_pb2.Rejected(
            source=log_pb2.REJECTION_SOURCE_PEER,
            peer=rng.randbytes(20),
            reason="signature recovers to a non-participant",
            input_sha256=rng.randbytes(32),
        ),
        "accepted_voucher": lambda: log_pb2.AcceptedVoucher(
            voucher=nitro_pb2.Voucher(
                channel_id=rng.randbytes(32), amount=rng.randbytes(32), signature=rng.randbytes(65)
            ),
            sent=rng.random() < 0.5,
        ),
        "received_messages": lambda: log_pb2.ReceivedMessages(
            peer=rng.randbytes(20), message_ids=[rng.randrange(2**40) for _ in range(3)]
        ),
        "accepted_proposal": lambda: log_pb2.AcceptedProposal(
            proposal=nitro_pb2.LedgerProposal(
                ledger_id=rng.randbytes(32),
                turn_num=rng.randrange(2**20),
                remove=nitro_pb2.RemoveGuarantee(
                    target=rng.randbytes(32), left_amount=rng.randbytes(32)
                ),
                signature=rng.randbytes(65),
            )
        ),
        "watch": lambda: _watch(rng),
    }
    assert set(builders) == set(KIND_BY_CASE)
    record = log_pb2.LogRecord()
    getattr(record, case).CopyFrom(builders[case]())
    return record


CASES = sorted(KIND_BY_CASE)


def sample_records(count: int, seed: int, *, time_ms: int = 0) -> list[log_pb2.LogRecord]:
    """``count`` records cycling through every payload case, reproducible from ``seed``."""
    rng = random.Random(seed)
    records = [payload_record(CASES[index % len(CASES)], rng) for index in range(count)]
    for record in records:
        record.time_ms = time_ms
    return records


def tagged_record(tag: str, time_ms: int = 0) -> log_pb2.LogRecord:
    """A small record whose identity is ``tag`` (kept in Rejected.reason)."""
    return log_pb2.LogRecord(time_ms=time_ms, rejected=log_pb2.Rejected(reason=tag))


class RawColumn:
    """One column family of a closed log, for tampering; unusable once its block ends."""

    def __init__(self, column: Rdict) -> None:
        self._column: Rdict | None = column

    def _live(self) -> Rdict:
        assert self._column is not None, "the raw column is closed"
        return self._column

    def __getitem__(self, key: bytes) -> bytes:
        value = self._live().get(key)
        assert isinstance(value, bytes), key
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._live()[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._live()[key]

    def release(self) -> None:
        self._column = None


@contextmanager
def raw_column(path: Path, name: str) -> Iterator[RawColumn]:
    """A column family of a closed log, opened directly in RocksDB for tampering."""
    options = Options(raw_mode=True)
    families = {family: Options(raw_mode=True) for family in ("records", "snapshots", "meta")}
    db = Rdict(str(path), options, column_families=families)
    raw = RawColumn(db.get_column_family(name))
    try:
        yield raw
    finally:
        # RocksDB keeps its lock while any column handle lives.
        raw.release()
        db.close()
