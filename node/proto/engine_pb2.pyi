from node.proto import log_pb2 as _log_pb2
from node.proto import nitro_pb2 as _nitro_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EngineSnapshot(_message.Message):
    __slots__ = ("format_version", "objectives", "ledgers", "received", "paid", "sent", "peers", "chain", "watched", "towers", "unconfirmed")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    LEDGERS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    WATCHED_FIELD_NUMBER: _ClassVar[int]
    TOWERS_FIELD_NUMBER: _ClassVar[int]
    UNCONFIRMED_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    objectives: _containers.RepeatedCompositeFieldContainer[ObjectiveEntry]
    ledgers: _containers.RepeatedCompositeFieldContainer[LedgerProposals]
    received: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.Voucher]
    paid: _containers.RepeatedCompositeFieldContainer[ChannelAmount]
    sent: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.Voucher]
    peers: _containers.RepeatedCompositeFieldContainer[PeerMessages]
    chain: ChainCursor
    watched: _containers.RepeatedCompositeFieldContainer[WatchedEntry]
    towers: _containers.RepeatedScalarFieldContainer[bytes]
    unconfirmed: _containers.RepeatedCompositeFieldContainer[_log_pb2.SubmittedTransaction]
    def __init__(self, format_version: _Optional[int] = ..., objectives: _Optional[_Iterable[_Union[ObjectiveEntry, _Mapping]]] = ..., ledgers: _Optional[_Iterable[_Union[LedgerProposals, _Mapping]]] = ..., received: _Optional[_Iterable[_Union[_nitro_pb2.Voucher, _Mapping]]] = ..., paid: _Optional[_Iterable[_Union[ChannelAmount, _Mapping]]] = ..., sent: _Optional[_Iterable[_Union[_nitro_pb2.Voucher, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[PeerMessages, _Mapping]]] = ..., chain: _Optional[_Union[ChainCursor, _Mapping]] = ..., watched: _Optional[_Iterable[_Union[WatchedEntry, _Mapping]]] = ..., towers: _Optional[_Iterable[bytes]] = ..., unconfirmed: _Optional[_Iterable[_Union[_log_pb2.SubmittedTransaction, _Mapping]]] = ...) -> None: ...

class ObjectiveEntry(_message.Message):
    __slots__ = ("direct_fund", "direct_defund", "virtual_fund", "virtual_defund", "settle", "defend", "guard", "failure", "done", "created_ms", "proposer")
    DIRECT_FUND_FIELD_NUMBER: _ClassVar[int]
    DIRECT_DEFUND_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_FUND_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_DEFUND_FIELD_NUMBER: _ClassVar[int]
    SETTLE_FIELD_NUMBER: _ClassVar[int]
    DEFEND_FIELD_NUMBER: _ClassVar[int]
    GUARD_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    PROPOSER_FIELD_NUMBER: _ClassVar[int]
    direct_fund: DirectFundObjective
    direct_defund: DirectDefundObjective
    virtual_fund: VirtualFundObjective
    virtual_defund: VirtualDefundObjective
    settle: SettleObjective
    defend: DefendObjective
    guard: GuardObjective
    failure: str
    done: bool
    created_ms: int
    proposer: bytes
    def __init__(self, direct_fund: _Optional[_Union[DirectFundObjective, _Mapping]] = ..., direct_defund: _Optional[_Union[DirectDefundObjective, _Mapping]] = ..., virtual_fund: _Optional[_Union[VirtualFundObjective, _Mapping]] = ..., virtual_defund: _Optional[_Union[VirtualDefundObjective, _Mapping]] = ..., settle: _Optional[_Union[SettleObjective, _Mapping]] = ..., defend: _Optional[_Union[DefendObjective, _Mapping]] = ..., guard: _Optional[_Union[GuardObjective, _Mapping]] = ..., failure: _Optional[str] = ..., done: _Optional[bool] = ..., created_ms: _Optional[int] = ..., proposer: _Optional[bytes] = ...) -> None: ...

class DirectFundObjective(_message.Message):
    __slots__ = ("fixed", "outcome", "my_index", "deposits_submitted")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MY_INDEX_FIELD_NUMBER: _ClassVar[int]
    DEPOSITS_SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    fixed: _nitro_pb2.FixedPart
    outcome: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.SingleAssetExit]
    my_index: int
    deposits_submitted: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., outcome: _Optional[_Iterable[_Union[_nitro_pb2.SingleAssetExit, _Mapping]]] = ..., my_index: _Optional[int] = ..., deposits_submitted: _Optional[_Iterable[bytes]] = ...) -> None: ...

class DirectDefundObjective(_message.Message):
    __slots__ = ("final_state", "my_index", "conclude_submitted")
    FINAL_STATE_FIELD_NUMBER: _ClassVar[int]
    MY_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONCLUDE_SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    final_state: _nitro_pb2.State
    my_index: int
    conclude_submitted: bool
    def __init__(self, final_state: _Optional[_Union[_nitro_pb2.State, _Mapping]] = ..., my_index: _Optional[int] = ..., conclude_submitted: _Optional[bool] = ...) -> None: ...

class VirtualFundObjective(_message.Message):
    __slots__ = ("fixed", "outcome", "my_index")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    MY_INDEX_FIELD_NUMBER: _ClassVar[int]
    fixed: _nitro_pb2.FixedPart
    outcome: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.SingleAssetExit]
    my_index: int
    def __init__(self, fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., outcome: _Optional[_Iterable[_Union[_nitro_pb2.SingleAssetExit, _Mapping]]] = ..., my_index: _Optional[int] = ...) -> None: ...

class VirtualDefundObjective(_message.Message):
    __slots__ = ("final_state", "my_index")
    FINAL_STATE_FIELD_NUMBER: _ClassVar[int]
    MY_INDEX_FIELD_NUMBER: _ClassVar[int]
    final_state: _nitro_pb2.State
    my_index: int
    def __init__(self, final_state: _Optional[_Union[_nitro_pb2.State, _Mapping]] = ..., my_index: _Optional[int] = ...) -> None: ...

class SettleObjective(_message.Message):
    __slots__ = ("channel_id", "ledger", "my_index", "submitted")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LEDGER_FIELD_NUMBER: _ClassVar[int]
    MY_INDEX_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    ledger: _nitro_pb2.FixedPart
    my_index: int
    submitted: _containers.RepeatedCompositeFieldContainer[SubmittedKey]
    def __init__(self, channel_id: _Optional[bytes] = ..., ledger: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., my_index: _Optional[int] = ..., submitted: _Optional[_Iterable[_Union[SubmittedKey, _Mapping]]] = ...) -> None: ...

class DefendObjective(_message.Message):
    __slots__ = ("fixed", "my_index", "submitted")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    MY_INDEX_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    fixed: _nitro_pb2.FixedPart
    my_index: int
    submitted: _containers.RepeatedCompositeFieldContainer[SubmittedKey]
    def __init__(self, fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., my_index: _Optional[int] = ..., submitted: _Optional[_Iterable[_Union[SubmittedKey, _Mapping]]] = ...) -> None: ...

class GuardObjective(_message.Message):
    __slots__ = ("fixed", "submitted")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    fixed: _nitro_pb2.FixedPart
    submitted: _containers.RepeatedCompositeFieldContainer[SubmittedKey]
    def __init__(self, fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., submitted: _Optional[_Iterable[_Union[SubmittedKey, _Mapping]]] = ...) -> None: ...

class WatchedEntry(_message.Message):
    __slots__ = ("requests", "challenged", "challenge_turn", "finalizes_at", "concluded", "event_block")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CHALLENGED_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_TURN_FIELD_NUMBER: _ClassVar[int]
    FINALIZES_AT_FIELD_NUMBER: _ClassVar[int]
    CONCLUDED_FIELD_NUMBER: _ClassVar[int]
    EVENT_BLOCK_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[_log_pb2.WatchedChannel]
    challenged: bool
    challenge_turn: int
    finalizes_at: int
    concluded: bool
    event_block: int
    def __init__(self, requests: _Optional[_Iterable[_Union[_log_pb2.WatchedChannel, _Mapping]]] = ..., challenged: _Optional[bool] = ..., challenge_turn: _Optional[int] = ..., finalizes_at: _Optional[int] = ..., concluded: _Optional[bool] = ..., event_block: _Optional[int] = ...) -> None: ...

class SubmittedKey(_message.Message):
    __slots__ = ("kind", "channel_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    kind: _log_pb2.TransactionKind
    channel_id: bytes
    def __init__(self, kind: _Optional[_Union[_log_pb2.TransactionKind, str]] = ..., channel_id: _Optional[bytes] = ...) -> None: ...

class LedgerProposals(_message.Message):
    __slots__ = ("ledger_id", "proposals")
    LEDGER_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    ledger_id: bytes
    proposals: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.LedgerProposal]
    def __init__(self, ledger_id: _Optional[bytes] = ..., proposals: _Optional[_Iterable[_Union[_nitro_pb2.LedgerProposal, _Mapping]]] = ...) -> None: ...

class ChannelAmount(_message.Message):
    __slots__ = ("channel_id", "amount")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    amount: bytes
    def __init__(self, channel_id: _Optional[bytes] = ..., amount: _Optional[bytes] = ...) -> None: ...

class PeerMessages(_message.Message):
    __slots__ = ("peer", "next_id", "seen_contiguous_max", "seen_above", "unacked")
    PEER_FIELD_NUMBER: _ClassVar[int]
    NEXT_ID_FIELD_NUMBER: _ClassVar[int]
    SEEN_CONTIGUOUS_MAX_FIELD_NUMBER: _ClassVar[int]
    SEEN_ABOVE_FIELD_NUMBER: _ClassVar[int]
    UNACKED_FIELD_NUMBER: _ClassVar[int]
    peer: bytes
    next_id: int
    seen_contiguous_max: int
    seen_above: _containers.RepeatedScalarFieldContainer[int]
    unacked: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, peer: _Optional[bytes] = ..., next_id: _Optional[int] = ..., seen_contiguous_max: _Optional[int] = ..., seen_above: _Optional[_Iterable[int]] = ..., unacked: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ChainCursor(_message.Message):
    __slots__ = ("has_block", "last_block", "has_event", "event_block", "event_log_index")
    HAS_BLOCK_FIELD_NUMBER: _ClassVar[int]
    LAST_BLOCK_FIELD_NUMBER: _ClassVar[int]
    HAS_EVENT_FIELD_NUMBER: _ClassVar[int]
    EVENT_BLOCK_FIELD_NUMBER: _ClassVar[int]
    EVENT_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    has_block: bool
    last_block: int
    has_event: bool
    event_block: int
    event_log_index: int
    def __init__(self, has_block: _Optional[bool] = ..., last_block: _Optional[int] = ..., has_event: _Optional[bool] = ..., event_block: _Optional[int] = ..., event_log_index: _Optional[int] = ...) -> None: ...
