from node.proto import nitro_pb2 as _nitro_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RejectionReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECTION_REASON_UNSPECIFIED: _ClassVar[RejectionReason]
    REJECTION_REASON_MALFORMED: _ClassVar[RejectionReason]
    REJECTION_REASON_BAD_SIGNATURE: _ClassVar[RejectionReason]
    REJECTION_REASON_WRONG_TURN: _ClassVar[RejectionReason]
    REJECTION_REASON_UNKNOWN_CHANNEL: _ClassVar[RejectionReason]
    REJECTION_REASON_NOT_A_PARTICIPANT: _ClassVar[RejectionReason]
    REJECTION_REASON_STALE_VOUCHER: _ClassVar[RejectionReason]
    REJECTION_REASON_INSUFFICIENT_FUNDS: _ClassVar[RejectionReason]
    REJECTION_REASON_POLICY: _ClassVar[RejectionReason]
    REJECTION_REASON_CHANNEL_NOT_OPEN: _ClassVar[RejectionReason]
REJECTION_REASON_UNSPECIFIED: RejectionReason
REJECTION_REASON_MALFORMED: RejectionReason
REJECTION_REASON_BAD_SIGNATURE: RejectionReason
REJECTION_REASON_WRONG_TURN: RejectionReason
REJECTION_REASON_UNKNOWN_CHANNEL: RejectionReason
REJECTION_REASON_NOT_A_PARTICIPANT: RejectionReason
REJECTION_REASON_STALE_VOUCHER: RejectionReason
REJECTION_REASON_INSUFFICIENT_FUNDS: RejectionReason
REJECTION_REASON_POLICY: RejectionReason
REJECTION_REASON_CHANNEL_NOT_OPEN: RejectionReason

class Frame(_message.Message):
    __slots__ = ("version", "messages", "acks")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    version: int
    messages: _containers.RepeatedCompositeFieldContainer[Envelope]
    acks: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, version: _Optional[int] = ..., messages: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ..., acks: _Optional[_Iterable[int]] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("id", "sender", "recipient", "payloads")
    ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    id: int
    sender: bytes
    recipient: bytes
    payloads: _containers.RepeatedCompositeFieldContainer[Payload]
    def __init__(self, id: _Optional[int] = ..., sender: _Optional[bytes] = ..., recipient: _Optional[bytes] = ..., payloads: _Optional[_Iterable[_Union[Payload, _Mapping]]] = ...) -> None: ...

class Payload(_message.Message):
    __slots__ = ("objective_id", "signed_state", "ledger_proposal", "voucher", "rejection", "ack", "watch_request")
    OBJECTIVE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_STATE_FIELD_NUMBER: _ClassVar[int]
    LEDGER_PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_FIELD_NUMBER: _ClassVar[int]
    REJECTION_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    WATCH_REQUEST_FIELD_NUMBER: _ClassVar[int]
    objective_id: str
    signed_state: _nitro_pb2.SignedState
    ledger_proposal: _nitro_pb2.LedgerProposal
    voucher: _nitro_pb2.Voucher
    rejection: Rejection
    ack: Ack
    watch_request: WatchRequest
    def __init__(self, objective_id: _Optional[str] = ..., signed_state: _Optional[_Union[_nitro_pb2.SignedState, _Mapping]] = ..., ledger_proposal: _Optional[_Union[_nitro_pb2.LedgerProposal, _Mapping]] = ..., voucher: _Optional[_Union[_nitro_pb2.Voucher, _Mapping]] = ..., rejection: _Optional[_Union[Rejection, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., watch_request: _Optional[_Union[WatchRequest, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("supported", "counter", "counter_signature", "release")
    SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    COUNTER_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    supported: _nitro_pb2.SignedState
    counter: _nitro_pb2.SignedState
    counter_signature: bytes
    release: bool
    def __init__(self, supported: _Optional[_Union[_nitro_pb2.SignedState, _Mapping]] = ..., counter: _Optional[_Union[_nitro_pb2.SignedState, _Mapping]] = ..., counter_signature: _Optional[bytes] = ..., release: _Optional[bool] = ...) -> None: ...

class Rejection(_message.Message):
    __slots__ = ("message_id", "reason", "detail")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    message_id: int
    reason: RejectionReason
    detail: str
    def __init__(self, message_id: _Optional[int] = ..., reason: _Optional[_Union[RejectionReason, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("message_ids",)
    MESSAGE_IDS_FIELD_NUMBER: _ClassVar[int]
    message_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, message_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Announcement(_message.Message):
    __slots__ = ("address", "peer_id", "multiaddrs", "ledgers", "time_ms")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    MULTIADDRS_FIELD_NUMBER: _ClassVar[int]
    LEDGERS_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    peer_id: str
    multiaddrs: _containers.RepeatedScalarFieldContainer[str]
    ledgers: _containers.RepeatedCompositeFieldContainer[LedgerOffer]
    time_ms: int
    def __init__(self, address: _Optional[bytes] = ..., peer_id: _Optional[str] = ..., multiaddrs: _Optional[_Iterable[str]] = ..., ledgers: _Optional[_Iterable[_Union[LedgerOffer, _Mapping]]] = ..., time_ms: _Optional[int] = ...) -> None: ...

class LedgerOffer(_message.Message):
    __slots__ = ("channel_id", "counterparty", "asset", "capacity")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTY_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    counterparty: bytes
    asset: bytes
    capacity: bytes
    def __init__(self, channel_id: _Optional[bytes] = ..., counterparty: _Optional[bytes] = ..., asset: _Optional[bytes] = ..., capacity: _Optional[bytes] = ...) -> None: ...

class SignedAnnouncement(_message.Message):
    __slots__ = ("announcement", "signature")
    ANNOUNCEMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    announcement: bytes
    signature: bytes
    def __init__(self, announcement: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
