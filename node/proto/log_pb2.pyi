from node.proto import nitro_pb2 as _nitro_pb2
from node.proto import wire_pb2 as _wire_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_KIND_UNSPECIFIED: _ClassVar[RecordKind]
    RECORD_KIND_ACCEPTED_STATE: _ClassVar[RecordKind]
    RECORD_KIND_CHAIN_EVENT: _ClassVar[RecordKind]
    RECORD_KIND_COMMAND: _ClassVar[RecordKind]
    RECORD_KIND_SENT_MESSAGE: _ClassVar[RecordKind]
    RECORD_KIND_ACKNOWLEDGEMENT: _ClassVar[RecordKind]
    RECORD_KIND_SUBMITTED_TRANSACTION: _ClassVar[RecordKind]
    RECORD_KIND_REJECTED: _ClassVar[RecordKind]
    RECORD_KIND_ACCEPTED_VOUCHER: _ClassVar[RecordKind]
    RECORD_KIND_RECEIVED_MESSAGES: _ClassVar[RecordKind]
    RECORD_KIND_ACCEPTED_PROPOSAL: _ClassVar[RecordKind]
    RECORD_KIND_WATCH: _ClassVar[RecordKind]

class TransactionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_KIND_UNSPECIFIED: _ClassVar[TransactionKind]
    TRANSACTION_KIND_DEPOSIT: _ClassVar[TransactionKind]
    TRANSACTION_KIND_CONCLUDE_AND_TRANSFER: _ClassVar[TransactionKind]
    TRANSACTION_KIND_CHALLENGE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_CHECKPOINT: _ClassVar[TransactionKind]
    TRANSACTION_KIND_TRANSFER: _ClassVar[TransactionKind]
    TRANSACTION_KIND_RECLAIM: _ClassVar[TransactionKind]
    TRANSACTION_KIND_APPROVE: _ClassVar[TransactionKind]
    TRANSACTION_KIND_CONCLUDE: _ClassVar[TransactionKind]

class RejectionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECTION_SOURCE_UNSPECIFIED: _ClassVar[RejectionSource]
    REJECTION_SOURCE_PEER: _ClassVar[RejectionSource]
    REJECTION_SOURCE_API: _ClassVar[RejectionSource]
    REJECTION_SOURCE_CHAIN: _ClassVar[RejectionSource]
RECORD_KIND_UNSPECIFIED: RecordKind
RECORD_KIND_ACCEPTED_STATE: RecordKind
RECORD_KIND_CHAIN_EVENT: RecordKind
RECORD_KIND_COMMAND: RecordKind
RECORD_KIND_SENT_MESSAGE: RecordKind
RECORD_KIND_ACKNOWLEDGEMENT: RecordKind
RECORD_KIND_SUBMITTED_TRANSACTION: RecordKind
RECORD_KIND_REJECTED: RecordKind
RECORD_KIND_ACCEPTED_VOUCHER: RecordKind
RECORD_KIND_RECEIVED_MESSAGES: RecordKind
RECORD_KIND_ACCEPTED_PROPOSAL: RecordKind
RECORD_KIND_WATCH: RecordKind
TRANSACTION_KIND_UNSPECIFIED: TransactionKind
TRANSACTION_KIND_DEPOSIT: TransactionKind
TRANSACTION_KIND_CONCLUDE_AND_TRANSFER: TransactionKind
TRANSACTION_KIND_CHALLENGE: TransactionKind
TRANSACTION_KIND_CHECKPOINT: TransactionKind
TRANSACTION_KIND_TRANSFER: TransactionKind
TRANSACTION_KIND_RECLAIM: TransactionKind
TRANSACTION_KIND_APPROVE: TransactionKind
TRANSACTION_KIND_CONCLUDE: TransactionKind
REJECTION_SOURCE_UNSPECIFIED: RejectionSource
REJECTION_SOURCE_PEER: RejectionSource
REJECTION_SOURCE_API: RejectionSource
REJECTION_SOURCE_CHAIN: RejectionSource

class LogRecord(_message.Message):
    __slots__ = ("seq", "format_version", "kind", "prev_hash", "time_ms", "accepted_state", "chain_event", "command", "sent_message", "acknowledgement", "submitted_transaction", "rejected", "accepted_voucher", "received_messages", "accepted_proposal", "watch")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_STATE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_EVENT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SENT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGEMENT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_VOUCHER_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    WATCH_FIELD_NUMBER: _ClassVar[int]
    seq: int
    format_version: int
    kind: RecordKind
    prev_hash: bytes
    time_ms: int
    accepted_state: AcceptedState
    chain_event: ChainEvent
    command: Command
    sent_message: SentMessage
    acknowledgement: Acknowledgement
    submitted_transaction: SubmittedTransaction
    rejected: Rejected
    accepted_voucher: AcceptedVoucher
    received_messages: ReceivedMessages
    accepted_proposal: AcceptedProposal
    watch: Watch
    def __init__(self, seq: _Optional[int] = ..., format_version: _Optional[int] = ..., kind: _Optional[_Union[RecordKind, str]] = ..., prev_hash: _Optional[bytes] = ..., time_ms: _Optional[int] = ..., accepted_state: _Optional[_Union[AcceptedState, _Mapping]] = ..., chain_event: _Optional[_Union[ChainEvent, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ..., sent_message: _Optional[_Union[SentMessage, _Mapping]] = ..., acknowledgement: _Optional[_Union[Acknowledgement, _Mapping]] = ..., submitted_transaction: _Optional[_Union[SubmittedTransaction, _Mapping]] = ..., rejected: _Optional[_Union[Rejected, _Mapping]] = ..., accepted_voucher: _Optional[_Union[AcceptedVoucher, _Mapping]] = ..., received_messages: _Optional[_Union[ReceivedMessages, _Mapping]] = ..., accepted_proposal: _Optional[_Union[AcceptedProposal, _Mapping]] = ..., watch: _Optional[_Union[Watch, _Mapping]] = ...) -> None: ...

class Watch(_message.Message):
    __slots__ = ("channel", "event", "tower")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TOWER_FIELD_NUMBER: _ClassVar[int]
    channel: WatchedChannel
    event: ChainEvent
    tower: bytes
    def __init__(self, channel: _Optional[_Union[WatchedChannel, _Mapping]] = ..., event: _Optional[_Union[ChainEvent, _Mapping]] = ..., tower: _Optional[bytes] = ...) -> None: ...

class WatchedChannel(_message.Message):
    __slots__ = ("client", "request")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    client: bytes
    request: _wire_pb2.WatchRequest
    def __init__(self, client: _Optional[bytes] = ..., request: _Optional[_Union[_wire_pb2.WatchRequest, _Mapping]] = ...) -> None: ...

class AcceptedState(_message.Message):
    __slots__ = ("channel_id", "state_hash", "signed_state")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNED_STATE_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    state_hash: bytes
    signed_state: _nitro_pb2.SignedState
    def __init__(self, channel_id: _Optional[bytes] = ..., state_hash: _Optional[bytes] = ..., signed_state: _Optional[_Union[_nitro_pb2.SignedState, _Mapping]] = ...) -> None: ...

class AcceptedVoucher(_message.Message):
    __slots__ = ("voucher", "sent")
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    voucher: _nitro_pb2.Voucher
    sent: bool
    def __init__(self, voucher: _Optional[_Union[_nitro_pb2.Voucher, _Mapping]] = ..., sent: _Optional[bool] = ...) -> None: ...

class AcceptedProposal(_message.Message):
    __slots__ = ("proposal",)
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    proposal: _nitro_pb2.LedgerProposal
    def __init__(self, proposal: _Optional[_Union[_nitro_pb2.LedgerProposal, _Mapping]] = ...) -> None: ...

class ChainEvent(_message.Message):
    __slots__ = ("block_number", "log_index", "tx_hash", "block_time_s", "deposited", "allocation_updated", "concluded", "challenge_registered", "challenge_cleared", "reclaimed", "block_processed", "blocks_reverted")
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    BLOCK_TIME_S_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_UPDATED_FIELD_NUMBER: _ClassVar[int]
    CONCLUDED_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_CLEARED_FIELD_NUMBER: _ClassVar[int]
    RECLAIMED_FIELD_NUMBER: _ClassVar[int]
    BLOCK_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_REVERTED_FIELD_NUMBER: _ClassVar[int]
    block_number: int
    log_index: int
    tx_hash: bytes
    block_time_s: int
    deposited: Deposited
    allocation_updated: AllocationUpdated
    concluded: Concluded
    challenge_registered: ChallengeRegistered
    challenge_cleared: ChallengeCleared
    reclaimed: Reclaimed
    block_processed: BlockProcessed
    blocks_reverted: BlocksReverted
    def __init__(self, block_number: _Optional[int] = ..., log_index: _Optional[int] = ..., tx_hash: _Optional[bytes] = ..., block_time_s: _Optional[int] = ..., deposited: _Optional[_Union[Deposited, _Mapping]] = ..., allocation_updated: _Optional[_Union[AllocationUpdated, _Mapping]] = ..., concluded: _Optional[_Union[Concluded, _Mapping]] = ..., challenge_registered: _Optional[_Union[ChallengeRegistered, _Mapping]] = ..., challenge_cleared: _Optional[_Union[ChallengeCleared, _Mapping]] = ..., reclaimed: _Optional[_Union[Reclaimed, _Mapping]] = ..., block_processed: _Optional[_Union[BlockProcessed, _Mapping]] = ..., blocks_reverted: _Optional[_Union[BlocksReverted, _Mapping]] = ...) -> None: ...

class Deposited(_message.Message):
    __slots__ = ("channel_id", "asset", "destination_holdings")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    asset: bytes
    destination_holdings: bytes
    def __init__(self, channel_id: _Optional[bytes] = ..., asset: _Optional[bytes] = ..., destination_holdings: _Optional[bytes] = ...) -> None: ...

class AllocationUpdated(_message.Message):
    __slots__ = ("channel_id", "asset_index", "asset", "initial_holdings", "final_holdings")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_INDEX_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    INITIAL_HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    FINAL_HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    asset_index: int
    asset: bytes
    initial_holdings: bytes
    final_holdings: bytes
    def __init__(self, channel_id: _Optional[bytes] = ..., asset_index: _Optional[int] = ..., asset: _Optional[bytes] = ..., initial_holdings: _Optional[bytes] = ..., final_holdings: _Optional[bytes] = ...) -> None: ...

class Concluded(_message.Message):
    __slots__ = ("channel_id", "finalizes_at")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    FINALIZES_AT_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    finalizes_at: int
    def __init__(self, channel_id: _Optional[bytes] = ..., finalizes_at: _Optional[int] = ...) -> None: ...

class ChallengeRegistered(_message.Message):
    __slots__ = ("channel_id", "finalizes_at", "candidate", "candidate_part", "candidate_signatures")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    FINALIZES_AT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_PART_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    finalizes_at: int
    candidate: _nitro_pb2.SignedState
    candidate_part: _nitro_pb2.VariablePart
    candidate_signatures: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, channel_id: _Optional[bytes] = ..., finalizes_at: _Optional[int] = ..., candidate: _Optional[_Union[_nitro_pb2.SignedState, _Mapping]] = ..., candidate_part: _Optional[_Union[_nitro_pb2.VariablePart, _Mapping]] = ..., candidate_signatures: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ChallengeCleared(_message.Message):
    __slots__ = ("channel_id", "new_turn_num_record")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_TURN_NUM_RECORD_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    new_turn_num_record: int
    def __init__(self, channel_id: _Optional[bytes] = ..., new_turn_num_record: _Optional[int] = ...) -> None: ...

class Reclaimed(_message.Message):
    __slots__ = ("channel_id", "asset_index")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_INDEX_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    asset_index: int
    def __init__(self, channel_id: _Optional[bytes] = ..., asset_index: _Optional[int] = ...) -> None: ...

class BlockProcessed(_message.Message):
    __slots__ = ("block_number",)
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    block_number: int
    def __init__(self, block_number: _Optional[int] = ...) -> None: ...

class BlocksReverted(_message.Message):
    __slots__ = ("first_block",)
    FIRST_BLOCK_FIELD_NUMBER: _ClassVar[int]
    first_block: int
    def __init__(self, first_block: _Optional[int] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("objective_id", "create_ledger_channel", "close_ledger_channel", "create_payment_channel", "close_payment_channel", "objective_decision", "settle_channel", "defend_channel", "guard_channel")
    OBJECTIVE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_LEDGER_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CLOSE_LEDGER_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CREATE_PAYMENT_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CLOSE_PAYMENT_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_DECISION_FIELD_NUMBER: _ClassVar[int]
    SETTLE_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    DEFEND_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    GUARD_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    objective_id: str
    create_ledger_channel: CreateLedgerChannel
    close_ledger_channel: CloseChannel
    create_payment_channel: CreatePaymentChannel
    close_payment_channel: CloseChannel
    objective_decision: ObjectiveDecision
    settle_channel: SettleChannel
    defend_channel: DefendChannel
    guard_channel: GuardChannel
    def __init__(self, objective_id: _Optional[str] = ..., create_ledger_channel: _Optional[_Union[CreateLedgerChannel, _Mapping]] = ..., close_ledger_channel: _Optional[_Union[CloseChannel, _Mapping]] = ..., create_payment_channel: _Optional[_Union[CreatePaymentChannel, _Mapping]] = ..., close_payment_channel: _Optional[_Union[CloseChannel, _Mapping]] = ..., objective_decision: _Optional[_Union[ObjectiveDecision, _Mapping]] = ..., settle_channel: _Optional[_Union[SettleChannel, _Mapping]] = ..., defend_channel: _Optional[_Union[DefendChannel, _Mapping]] = ..., guard_channel: _Optional[_Union[GuardChannel, _Mapping]] = ...) -> None: ...

class CreateLedgerChannel(_message.Message):
    __slots__ = ("fixed", "outcome")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    fixed: _nitro_pb2.FixedPart
    outcome: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.SingleAssetExit]
    def __init__(self, fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., outcome: _Optional[_Iterable[_Union[_nitro_pb2.SingleAssetExit, _Mapping]]] = ...) -> None: ...

class CreatePaymentChannel(_message.Message):
    __slots__ = ("fixed", "outcome")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    fixed: _nitro_pb2.FixedPart
    outcome: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.SingleAssetExit]
    def __init__(self, fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., outcome: _Optional[_Iterable[_Union[_nitro_pb2.SingleAssetExit, _Mapping]]] = ...) -> None: ...

class CloseChannel(_message.Message):
    __slots__ = ("channel_id", "final_state")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    FINAL_STATE_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    final_state: _nitro_pb2.State
    def __init__(self, channel_id: _Optional[bytes] = ..., final_state: _Optional[_Union[_nitro_pb2.State, _Mapping]] = ...) -> None: ...

class DefendChannel(_message.Message):
    __slots__ = ("channel_id", "fixed")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    fixed: _nitro_pb2.FixedPart
    def __init__(self, channel_id: _Optional[bytes] = ..., fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ...) -> None: ...

class GuardChannel(_message.Message):
    __slots__ = ("channel_id", "fixed")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    fixed: _nitro_pb2.FixedPart
    def __init__(self, channel_id: _Optional[bytes] = ..., fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ...) -> None: ...

class SettleChannel(_message.Message):
    __slots__ = ("channel_id", "ledger")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    ledger: _nitro_pb2.FixedPart
    def __init__(self, channel_id: _Optional[bytes] = ..., ledger: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ...) -> None: ...

class ObjectiveDecision(_message.Message):
    __slots__ = ("approved", "reason", "proposer")
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    approved: bool
    reason: str
    proposer: bytes
    def __init__(self, approved: _Optional[bool] = ..., reason: _Optional[str] = ..., proposer: _Optional[bytes] = ...) -> None: ...

class SentMessage(_message.Message):
    __slots__ = ("peer", "envelope", "voucher_channels")
    PEER_FIELD_NUMBER: _ClassVar[int]
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    peer: bytes
    envelope: _wire_pb2.Envelope
    voucher_channels: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, peer: _Optional[bytes] = ..., envelope: _Optional[_Union[_wire_pb2.Envelope, _Mapping]] = ..., voucher_channels: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Acknowledgement(_message.Message):
    __slots__ = ("peer", "message_ids")
    PEER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    peer: bytes
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, peer: _Optional[bytes] = ..., message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ReceivedMessages(_message.Message):
    __slots__ = ("peer", "message_ids")
    PEER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    peer: bytes
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, peer: _Optional[bytes] = ..., message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SubmittedTransaction(_message.Message):
    __slots__ = ("objective_id", "tx_kind", "channel_id", "tx_hash", "nonce", "amount", "asset", "failed", "failure", "mined")
    OBJECTIVE_ID_FIELD_NUMBER: _ClassVar[int]
    TX_KIND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    MINED_FIELD_NUMBER: _ClassVar[int]
    objective_id: str
    tx_kind: TransactionKind
    channel_id: bytes
    tx_hash: bytes
    nonce: int
    amount: bytes
    asset: bytes
    failed: bool
    failure: str
    mined: bool
    def __init__(self, objective_id: _Optional[str] = ..., tx_kind: _Optional[_Union[TransactionKind, str]] = ..., channel_id: _Optional[bytes] = ..., tx_hash: _Optional[bytes] = ..., nonce: _Optional[int] = ..., amount: _Optional[bytes] = ..., asset: _Optional[bytes] = ..., failed: _Optional[bool] = ..., failure: _Optional[str] = ..., mined: _Optional[bool] = ...) -> None: ...

class Rejected(_message.Message):
    __slots__ = ("source", "peer", "reason", "input_sha256")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHA256_FIELD_NUMBER: _ClassVar[int]
    source: RejectionSource
    peer: bytes
    reason: str
    input_sha256: bytes
    def __init__(self, source: _Optional[_Union[RejectionSource, str]] = ..., peer: _Optional[bytes] = ..., reason: _Optional[str] = ..., input_sha256: _Optional[bytes] = ...) -> None: ...
