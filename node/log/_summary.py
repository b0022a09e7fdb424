"""One-line, human-readable summaries of log records (for ``scnode log show``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from node.log._records import KIND_NAMES
from node.proto import log_pb2

_IDS_SHOWN_MAX: Final = 4


def short_hex(data: bytes, *, keep: int = 4) -> str:
    """``0x`` and the first ``keep`` bytes of ``data`` in hex, with an ellipsis if cut."""
    if not data:
        return "-"
    text = "0x" + data[:keep].hex()
    return text + "…" if len(data) > keep else text


def amount(data: bytes) -> str:
    """A uint256 stored as big-endian bytes, in decimal."""
    return str(int.from_bytes(data, "big"))


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(value) for value in ids[:_IDS_SHOWN_MAX])
    more = len(ids) - _IDS_SHOWN_MAX
    return f"[{shown}{f', +{more}' if more > 0 else ''}]"


def _accepted_state(payload: log_pb2.AcceptedState) -> str:
    state = payload.signed_state.state
    signers = sorted(s.participant_index for s in payload.signed_state.signatures)
    final = " final" if state.is_final else ""
    return (
        f"channel {short_hex(payload.channel_id)} turn {state.turn_num}{final} signed by {signers}"
    )


def _chain_event(payload: log_pb2.ChainEvent) -> str:
    event = payload.WhichOneof("event") or "unknown"
    detail = getattr(payload, event) if event != "unknown" else None
    channel = getattr(detail, "channel_id", b"")
    where = f"block {payload.block_number} log {payload.log_index}"
    return f"{event} {where}" + (f" channel {short_hex(channel)}" if channel else "")


def _command(payload: log_pb2.Command) -> str:
    command = payload.WhichOneof("command") or "none"
    return f"{command} objective {payload.objective_id or '-'}"


def _sent_message(payload: log_pb2.SentMessage) -> str:
    envelope = payload.envelope
    return (
        f"to {short_hex(payload.peer)} message {envelope.id} "
        f"with {len(envelope.payloads)} payload(s)"
    )


def _acknowledgement(payload: log_pb2.Acknowledgement) -> str:
    return f"peer {short_hex(payload.peer)} acked {_ids(payload.message_ids)}"


def _received_messages(payload: log_pb2.ReceivedMessages) -> str:
    return f"from {short_hex(payload.peer)} handled {_ids(payload.message_ids)}"


def _submitted_transaction(payload: log_pb2.SubmittedTransaction) -> str:
    kind = log_pb2.TransactionKind.Name(payload.tx_kind).removeprefix("TRANSACTION_KIND_")
    text = f"{kind} channel {short_hex(payload.channel_id)} tx {short_hex(payload.tx_hash)}"
    return text + (f" amount {amount(payload.amount)}" if payload.amount else "")


def _rejected(payload: log_pb2.Rejected) -> str:
    source = log_pb2.RejectionSource.Name(payload.source).removeprefix("REJECTION_SOURCE_")
    peer = f" {short_hex(payload.peer)}" if payload.peer else ""
    return f"{source}{peer}: {payload.reason}"


def _accepted_voucher(payload: log_pb2.AcceptedVoucher) -> str:
    direction = "paid" if payload.sent else "received"
    voucher = payload.voucher
    return f"{direction} {amount(voucher.amount)} on channel {short_hex(voucher.channel_id)}"


def _accepted_proposal(payload: log_pb2.AcceptedProposal) -> str:
    proposal = payload.proposal
    change = proposal.WhichOneof("change") or "none"
    return f"{change} on ledger {short_hex(proposal.ledger_id)} at turn {proposal.turn_num}"


def _watch(payload: log_pb2.Watch) -> str:
    body = payload.WhichOneof("body")
    if body == "tower":
        return f"watchtower {short_hex(payload.tower)} added"
    if body == "channel":
        watched = payload.channel
        request = watched.request
        state = request.supported.state
        what = "released" if request.release else f"turn {state.turn_num}"
        counter = " with a counter-challenge" if request.HasField("counter") else ""
        return f"watching for {short_hex(watched.client)}: {what}{counter}"
    if body == "event":
        return "watched " + _chain_event(payload.event)
    return "watch (empty)"


_SUMMARIES: Final[dict[str, Callable[[Any], str]]] = {
    "accepted_state": _accepted_state,
    "chain_event": _chain_event,
    "command": _command,
    "sent_message": _sent_message,
    "acknowledgement": _acknowledgement,
    "received_messages": _received_messages,
    "submitted_transaction": _submitted_transaction,
    "rejected": _rejected,
    "accepted_voucher": _accepted_voucher,
    "accepted_proposal": _accepted_proposal,
    "watch": _watch,
}


def summarise(record: log_pb2.LogRecord) -> str:
    """A one-line description of the record's payload."""
    case = record.WhichOneof("payload")
    if case is None:
        return "(no payload)"
    return _SUMMARIES[case](getattr(record, case))


def kind_name(kind: int) -> str:
    """``ACCEPTED_STATE`` for 10, or the number when it names no kind."""
    return KIND_NAMES.get(kind, str(kind))
