"""Hypothesis strategies for valid event logs, and helpers shared by the derive tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from node.core.constants import allocation_type_guarantee
from node.derive import DeriveModule, ReferenceFold
from node.proto import derive_pb2, log_pb2, nitro_pb2

ROOT = Path(__file__).resolve().parents[2]
CHANNELS_WASM = ROOT / "wasm" / "channels.wasm"
PAYMENTS_WASM = ROOT / "wasm" / "payments.wasm"
ASSETS = (bytes(20), b"\xee" * 20)


@dataclass(frozen=True)
class ChannelSpec:
    fixed: nitro_pb2.FixedPart
    channel_id: bytes

    @property
    def participants(self) -> int:
        return len(self.fixed.participants)


def channel_spec(number: int, participants: int) -> ChannelSpec:
    fixed = nitro_pb2.FixedPart(
        participants=[
            number.to_bytes(2, "big") + bytes([index + 1]) * 18 for index in range(participants)
        ],
        channel_nonce=number,
        app_definition=b"\x0a" * 20,
        challenge_duration=60,
    )
    return ChannelSpec(fixed, hashlib.sha256(fixed.SerializeToString()).digest())


def u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def accepted_state(
    spec: ChannelSpec, *, turn: int, is_final: bool, amounts: Sequence[int], signers: set[int]
) -> log_pb2.LogRecord:
    state = nitro_pb2.State(fixed=spec.fixed, turn_num=turn, is_final=is_final)
    exit_ = state.outcome.add(asset=ASSETS[0])
    for index, amount in enumerate(amounts):
        allocation = exit_.allocations.add(destination=bytes([index + 1]) * 32, amount=u256(amount))
        if index == 2:  # a guarantee, as a ledger channel funding a virtual one
            allocation.allocation_type = allocation_type_guarantee
            allocation.metadata = b"\x11" * 32 + b"\x22" * 32
    state_hash = hashlib.sha256(state.SerializeToString()).digest()
    record = log_pb2.LogRecord()
    record.accepted_state.channel_id = spec.channel_id
    record.accepted_state.state_hash = state_hash
    record.accepted_state.signed_state.state.CopyFrom(state)
    for signer in sorted(signers):
        record.accepted_state.signed_state.signatures.add(
            participant_index=signer,
            signature=hashlib.sha512(state_hash + bytes([signer])).digest()[:64] + b"\x1b",
        )
    return record


@st.composite
def _state_record(draw: st.DrawFn, spec: ChannelSpec) -> log_pb2.LogRecord:
    signers = draw(st.sets(st.integers(0, spec.participants - 1), min_size=1))
    amounts = draw(st.lists(st.sampled_from([0, 5, 10, 2**255]), min_size=0, max_size=3))
    return accepted_state(
        spec,
        turn=draw(st.integers(0, 6)),
        is_final=draw(st.booleans()) and draw(st.booleans()),
        amounts=amounts,
        signers=signers,
    )


@st.composite
def challenge_candidate(draw: st.DrawFn, spec: ChannelSpec) -> nitro_pb2.SignedState:
    """A challenge's candidate as the chain watcher logs it: one of the channel's states,
    sometimes with a signature twice (the adjudicator accepts that) or with none."""
    candidate = nitro_pb2.SignedState()
    candidate.CopyFrom(draw(_state_record(spec)).accepted_state.signed_state)
    shape = draw(st.sampled_from(["signed", "signed", "signed twice", "unsigned"]))
    if shape == "signed twice":
        candidate.signatures.append(candidate.signatures[0])
    elif shape == "unsigned":
        del candidate.signatures[:]
    return candidate


@st.composite
def _chain_record(draw: st.DrawFn, spec: ChannelSpec, time_s: int) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord()
    event = record.chain_event
    event.block_number = time_s
    event.block_time_s = time_s
    kind = draw(
        st.sampled_from(
            [
                "deposited",
                "allocation_updated",
                "concluded",
                "challenge",
                "cleared",
                "reclaimed",
                "block",
            ]
        )
    )
    amount = u256(draw(st.sampled_from([0, 1, 7, 2**256 - 1])))
    asset = draw(st.sampled_from(ASSETS))
    if kind == "deposited":
        event.deposited.channel_id = spec.channel_id
        event.deposited.asset = asset
        event.deposited.destination_holdings = amount
    elif kind == "allocation_updated":
        event.allocation_updated.channel_id = spec.channel_id
        event.allocation_updated.asset = asset
        event.allocation_updated.final_holdings = amount
    elif kind == "concluded":
        event.concluded.channel_id = spec.channel_id
        event.concluded.finalizes_at = time_s
    elif kind == "challenge":
        event.challenge_registered.channel_id = spec.channel_id
        event.challenge_registered.finalizes_at = time_s + draw(st.integers(0, 20))
        if draw(st.integers(0, 3)):  # a challenge made through another contract has none
            event.challenge_registered.candidate.CopyFrom(draw(challenge_candidate(spec)))
    elif kind == "cleared":
        event.challenge_cleared.channel_id = spec.channel_id
    elif kind == "reclaimed":
        event.reclaimed.channel_id = spec.channel_id
    else:
        event.block_processed.block_number = time_s
    return record


@st.composite
def _voucher_record(draw: st.DrawFn, spec: ChannelSpec) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord()
    record.accepted_voucher.sent = draw(st.booleans())
    record.accepted_voucher.voucher.channel_id = spec.channel_id
    record.accepted_voucher.voucher.amount = u256(draw(st.integers(0, 40)))
    record.accepted_voucher.voucher.signature = b"\x33" * 65
    return record


def blocks_reverted(first_block: int, *, time_s: int = 0) -> log_pb2.LogRecord:
    """A reorganisation: the chain events of blocks ``first_block`` on are undone."""
    record = log_pb2.LogRecord()
    record.chain_event.block_time_s = time_s  # not folded: a revert moves no clock
    record.chain_event.blocks_reverted.first_block = first_block
    return record


def remined(record: log_pb2.LogRecord, block: int) -> log_pb2.LogRecord:
    """A copy of chain event ``record`` as if mined again in ``block`` (block time = block)."""
    copy = log_pb2.LogRecord()
    copy.CopyFrom(record)
    copy.ClearField("seq")
    copy.chain_event.block_number = block
    copy.chain_event.block_time_s = block
    if copy.chain_event.WhichOneof("event") == "block_processed":
        copy.chain_event.block_processed.block_number = block
    return copy


def _other_record(number: int) -> log_pb2.LogRecord:
    """A record no module folds: it only advances the cursor (a watchtower's among them)."""
    record = log_pb2.LogRecord(time_ms=number)
    if number % 3 == 1:
        record.acknowledgement.peer = b"\x44" * 20
        record.acknowledgement.message_ids.append(number)
    elif number % 3 == 2:
        record.watch.tower = b"\x45" * 20
    else:
        record.rejected.reason = "duplicate"
    return record


class _LogBuilder:
    """Records as they are drawn, folded into an oracle only to know how far back a
    revert may reach (the blocks the undo journal still holds)."""

    def __init__(self) -> None:
        self.records: list[log_pb2.LogRecord] = []
        self.oracle = ReferenceFold()

    def add(self, record: log_pb2.LogRecord) -> None:
        (numbered,) = number_records([record], len(self.records) + 1)
        self.oracle.apply(numbered)
        self.records.append(record)

    def chain_events_from(self, first_block: int) -> list[log_pb2.LogRecord]:
        """The chain events logged from ``first_block`` on, reverts aside."""
        return [
            record
            for record in self.records
            if record.WhichOneof("payload") == "chain_event"
            and record.chain_event.WhichOneof("event") != "blocks_reverted"
            and record.chain_event.block_number >= first_block
        ]


@st.composite
def _reorganise(draw: st.DrawFn, log: _LogBuilder, time_s: int) -> int:
    """A BlocksReverted the journal can undo, then some of the orphaned events mined
    again in the canonical blocks. Returns the block the chain goes on from."""
    first = max(log.oracle.undo_floor_block, time_s - draw(st.integers(0, 40)))
    orphans = log.chain_events_from(first)
    log.add(blocks_reverted(first, time_s=draw(st.sampled_from([0, time_s]))))
    block = first
    for orphan in orphans[: draw(st.integers(0, 3))]:
        block += draw(st.integers(0, 2))
        log.add(remined(orphan, block))
    return block


@st.composite
def valid_logs(draw: st.DrawFn, max_records: int = 40) -> list[log_pb2.LogRecord]:
    """A valid log: records numbered from 1, over a few channels. Chain events come in
    block order (block number = block time) but now and then one from an older block;
    reorganisations revert recent blocks, and the canonical chain goes on from there."""
    specs = [
        channel_spec(number, draw(st.integers(1, 4))) for number in range(draw(st.integers(1, 3)))
    ]
    log = _LogBuilder()
    time_s = 1000
    for _ in range(draw(st.integers(0, max_records))):
        spec = draw(st.sampled_from(specs))
        kind = draw(
            st.sampled_from(
                ["state", "state", "state", "chain", "chain", "voucher", "other", "revert"]
            )
        )
        time_s += draw(st.integers(0, 10))
        if kind == "state":
            log.add(draw(_state_record(spec)))
        elif kind == "chain":
            record = draw(_chain_record(spec, time_s))
            if draw(st.integers(0, 15)) == 0:  # from a block older than the last one
                record.chain_event.block_number -= draw(st.integers(1, 30))
            log.add(record)
        elif kind == "voucher":
            log.add(draw(_voucher_record(spec)))
        elif kind == "revert":
            time_s = draw(_reorganise(log, time_s))
        else:
            log.add(_other_record(len(log.records)))
    return number_records(log.records)


def number_records(records: Sequence[log_pb2.LogRecord], first: int = 1) -> list[log_pb2.LogRecord]:
    """Copies of ``records`` with seq set from ``first``."""
    numbered = []
    for offset, record in enumerate(records):
        copy = log_pb2.LogRecord()
        copy.CopyFrom(record)
        copy.seq = first + offset
        numbered.append(copy)
    return numbered


def all_queries(reference: ReferenceFold) -> list[derive_pb2.Query]:
    """Every query worth comparing: each channel, a list, totals, cursor, unknown ids."""
    queries = [
        derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=channel_id))
        for channel_id in sorted(reference.channels)
    ]
    queries += [
        derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=b"\x00" * 32)),
        derive_pb2.Query(get_channel=derive_pb2.GetChannel(channel_id=b"short")),
        derive_pb2.Query(list_channels=derive_pb2.ListChannels()),
        derive_pb2.Query(list_channels=derive_pb2.ListChannels(limit=1)),
        derive_pb2.Query(get_totals=derive_pb2.GetTotals()),
        derive_pb2.Query(get_cursor=derive_pb2.GetCursor()),
    ]
    return queries


_modules: dict[Path, DeriveModule] = {}


def load_module(path: Path) -> DeriveModule:
    """A module compiled once per test session."""
    if path not in _modules:
        _modules[path] = DeriveModule.from_file(path)
    return _modules[path]
