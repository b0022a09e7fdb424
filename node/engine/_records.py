"""Log records the engine writes, built from values (pure functions).

Channel ids and state hashes are computed here, by the host, never taken from
a peer: the derivation module trusts them (DESIGN.md, data flow rule 5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from node.core import (
    FixedPart,
    SignedState,
    SingleAssetExit,
    State,
    Voucher,
    address_to_bytes,
    channel_id,
    fixed_part_to_proto,
    signed_state_to_proto,
    single_asset_exit_to_proto,
    state_hash,
    state_to_proto,
    uint256_to_bytes,
    voucher_to_proto,
)
from node.engine._clock import engine_clock
from node.proto import log_pb2, wire_pb2
from node.protocols import ObjectiveId, ObjectiveKind, TransactionKind

TX_KIND_TO_LOG: dict[TransactionKind, int] = {
    TransactionKind.DEPOSIT: log_pb2.TRANSACTION_KIND_DEPOSIT,
    TransactionKind.CONCLUDE_AND_TRANSFER: log_pb2.TRANSACTION_KIND_CONCLUDE_AND_TRANSFER,
    TransactionKind.CHALLENGE: log_pb2.TRANSACTION_KIND_CHALLENGE,
    TransactionKind.CONCLUDE: log_pb2.TRANSACTION_KIND_CONCLUDE,
    TransactionKind.RECLAIM: log_pb2.TRANSACTION_KIND_RECLAIM,
    TransactionKind.TRANSFER: log_pb2.TRANSACTION_KIND_TRANSFER,
    TransactionKind.CHECKPOINT: log_pb2.TRANSACTION_KIND_CHECKPOINT,
}
TX_KIND_FROM_LOG = {value: kind for kind, value in TX_KIND_TO_LOG.items()}


def now_ms() -> int:
    """Wall-clock milliseconds: data written into a record, never read back as a clock."""
    return engine_clock().wall_ms()


def accepted_state_record(signed: SignedState) -> log_pb2.LogRecord:
    """An AcceptedState whose every listed signature the caller has verified."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    accepted = record.accepted_state
    accepted.channel_id = channel_id(signed.state.fixed)
    accepted.state_hash = state_hash(signed.state)
    accepted.signed_state.CopyFrom(signed_state_to_proto(signed))
    return record


def create_command_record(
    objective_id: ObjectiveId, fixed: FixedPart, outcome: Sequence[SingleAssetExit]
) -> log_pb2.LogRecord:
    """The API asked to open a ledger channel."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    command = record.command
    command.objective_id = str(objective_id)
    command.create_ledger_channel.fixed.CopyFrom(fixed_part_to_proto(fixed))
    command.create_ledger_channel.outcome.extend(
        single_asset_exit_to_proto(asset_exit) for asset_exit in outcome
    )
    return record


def create_payment_record(
    objective_id: ObjectiveId, fixed: FixedPart, outcome: Sequence[SingleAssetExit]
) -> log_pb2.LogRecord:
    """The API asked to open a virtual (payment) channel."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    command = record.command
    command.objective_id = str(objective_id)
    command.create_payment_channel.fixed.CopyFrom(fixed_part_to_proto(fixed))
    command.create_payment_channel.outcome.extend(
        single_asset_exit_to_proto(asset_exit) for asset_exit in outcome
    )
    return record


def close_payment_record(objective_id: ObjectiveId, final: State) -> log_pb2.LogRecord:
    """The API asked to close a virtual (payment) channel with the final state ``final``."""
    return _close_record(objective_id, final, "close_payment_channel")


def close_command_record(objective_id: ObjectiveId, final: State) -> log_pb2.LogRecord:
    """The API asked to close a ledger channel with the final state ``final``."""
    return _close_record(objective_id, final, "close_ledger_channel")


def _close_record(objective_id: ObjectiveId, final: State, case: str) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.command.objective_id = str(objective_id)
    close = getattr(record.command, case)
    close.channel_id = objective_id.channel_id
    close.final_state.CopyFrom(state_to_proto(final))
    return record


def settle_record(
    objective_id: ObjectiveId, channel: bytes, ledger: FixedPart
) -> log_pb2.LogRecord:
    """Enforce ``channel`` on chain through our ledger ``ledger`` (the ledger itself: exit)."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.command.objective_id = str(objective_id)
    settle = record.command.settle_channel
    settle.channel_id = channel
    settle.ledger.CopyFrom(fixed_part_to_proto(ledger))
    return record


def defend_record(objective_id: ObjectiveId, fixed: FixedPart) -> log_pb2.LogRecord:
    """Answer a stale challenge of the channel ``fixed`` names."""
    return _answer_record(objective_id, fixed, "defend_channel")


def guard_record(objective_id: ObjectiveId, fixed: FixedPart) -> log_pb2.LogRecord:
    """As a watchtower: answer a stale challenge of a client's channel ``fixed`` names."""
    return _answer_record(objective_id, fixed, "guard_channel")


def _answer_record(objective_id: ObjectiveId, fixed: FixedPart, field: str) -> log_pb2.LogRecord:
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.command.objective_id = str(objective_id)
    answer = getattr(record.command, field)
    answer.channel_id = objective_id.channel_id
    answer.fixed.CopyFrom(fixed_part_to_proto(fixed))
    return record


def decision_record(
    objective_id: ObjectiveId, *, approved: bool, reason: str, proposer: str | None = None
) -> log_pb2.LogRecord:
    """The policy's answer to an objective a peer (``proposer``) proposed, or a refusal
    (a peer's of ours, or an objective given up)."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.command.objective_id = str(objective_id)
    record.command.objective_decision.approved = approved
    record.command.objective_decision.reason = reason
    if proposer is not None:
        record.command.objective_decision.proposer = address_to_bytes(proposer)
    return record


def submitted_record(
    objective_id: ObjectiveId,
    kind: TransactionKind,
    *,
    channel: bytes,
    tx_hash: bytes,
    nonce: int,
    asset: str | None = None,
    amount: int = 0,
    failure: str | None = None,
    mined: bool = False,
) -> log_pb2.LogRecord:
    """A transaction sent for an objective (``failure`` set: the chain refused it;
    ``mined``: the chain mined it)."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    tx = record.submitted_transaction
    tx.objective_id = str(objective_id)
    tx.tx_kind = TX_KIND_TO_LOG[kind]  # type: ignore[assignment]
    tx.channel_id = channel
    tx.tx_hash = tx_hash
    tx.nonce = nonce
    if asset is not None:
        tx.asset = address_to_bytes(asset, "asset")
        tx.amount = uint256_to_bytes(amount, "amount")
    if failure is not None:
        tx.failed = True
        tx.failure = failure
    tx.mined = mined
    return record


def approve_record(
    objective_id: ObjectiveId, *, channel: bytes, tx_hash: bytes, nonce: int
) -> log_pb2.LogRecord:
    """An ERC20 approval sent before a deposit (audit only: objectives ignore it)."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    tx = record.submitted_transaction
    tx.objective_id = str(objective_id)
    tx.tx_kind = log_pb2.TRANSACTION_KIND_APPROVE
    tx.channel_id = channel
    tx.tx_hash = tx_hash
    tx.nonce = nonce
    return record


def accepted_voucher_record(voucher: Voucher, *, sent: bool) -> log_pb2.LogRecord:
    """A voucher we signed (``sent``) or checked and accepted."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.accepted_voucher.voucher.CopyFrom(voucher_to_proto(voucher))
    record.accepted_voucher.sent = sent
    return record


def rejected_record(
    source: int, reason: str, raw_input: bytes, peer: bytes = b""
) -> log_pb2.LogRecord:
    """An input refused, for audit: it never changes channel state."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    rejected = record.rejected
    rejected.source = source  # type: ignore[assignment]
    rejected.peer = peer
    rejected.reason = reason
    rejected.input_sha256 = hashlib.sha256(raw_input).digest()
    return record


def chain_event_record(event: log_pb2.ChainEvent) -> log_pb2.LogRecord:
    """A confirmed adjudicator event."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.chain_event.CopyFrom(event)
    return record


def voucher_payload(voucher: Voucher) -> wire_pb2.Payload:
    """The payload carrying ``voucher`` to its payee."""
    objective = ObjectiveId(ObjectiveKind.VIRTUAL_FUND, voucher.channel_id)
    payload = wire_pb2.Payload(objective_id=str(objective))
    payload.voucher.CopyFrom(voucher_to_proto(voucher))
    return payload
