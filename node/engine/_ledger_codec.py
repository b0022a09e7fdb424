"""Ledger proposals on the wire and in the log: ``SignedProposal`` <-> ``LedgerProposal``."""

from __future__ import annotations

from node.core import (
    guarantee_from_proto,
    guarantee_to_proto,
    uint256_from_bytes,
    uint256_to_bytes,
)
from node.core.errors import InvalidValueError
from node.engine._records import now_ms
from node.proto import log_pb2, nitro_pb2
from node.protocols import Add, Proposal, Remove, SignedProposal

_SIGNATURE_BYTES = 65


def signed_proposal_to_proto(signed: SignedProposal) -> nitro_pb2.LedgerProposal:
    """The wire form of a signed proposal (or of a follower's countersignature)."""
    message = nitro_pb2.LedgerProposal(
        ledger_id=signed.ledger_id, turn_num=signed.turn_num, signature=signed.signature
    )
    proposal = signed.proposal
    if isinstance(proposal, Add):
        message.add.guarantee.CopyFrom(guarantee_to_proto(proposal.guarantee))
        message.add.left_deposit = uint256_to_bytes(proposal.left_deposit, "left_deposit")
    else:
        message.remove.target = proposal.target
        message.remove.left_amount = uint256_to_bytes(proposal.left_amount, "left_amount")
    return message


def signed_proposal_from_proto(
    message: nitro_pb2.LedgerProposal, path: str = "ledger_proposal"
) -> SignedProposal:
    """Decode a peer's proposal, checking shapes (not the signer).

    Raises:
        InvalidValueError: a field is missing or of the wrong size.
    """
    if len(message.ledger_id) != 32:
        raise InvalidValueError(f"{path}.ledger_id", "must be 32 bytes")
    if len(message.signature) != _SIGNATURE_BYTES:
        raise InvalidValueError(f"{path}.signature", f"must be {_SIGNATURE_BYTES} bytes")
    proposal: Proposal
    match message.WhichOneof("change"):
        case "add":
            guarantee = guarantee_from_proto(message.add.guarantee, f"{path}.add.guarantee")
            deposit = uint256_from_bytes(message.add.left_deposit, f"{path}.add.left_deposit")
            proposal = Add(guarantee, deposit)
        case "remove":
            if len(message.remove.target) != 32:
                raise InvalidValueError(f"{path}.remove.target", "must be 32 bytes")
            amount = uint256_from_bytes(message.remove.left_amount, f"{path}.remove.left_amount")
            proposal = Remove(message.remove.target, amount)
        case _:
            raise InvalidValueError(f"{path}.change", "neither add nor remove")
    return SignedProposal(message.ledger_id, message.turn_num, proposal, message.signature)


def accepted_proposal_record(signed: SignedProposal) -> log_pb2.LogRecord:
    """A proposal we made (leader) or checked and queued (follower)."""
    record = log_pb2.LogRecord(time_ms=now_ms())
    record.accepted_proposal.proposal.CopyFrom(signed_proposal_to_proto(signed))
    return record
