from node.proto import nitro_pb2 as _nitro_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_STATUS_OK: _ClassVar[QueryStatus]
    QUERY_STATUS_NOT_FOUND: _ClassVar[QueryStatus]
    QUERY_STATUS_BAD_QUERY: _ClassVar[QueryStatus]

class ChannelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_STATUS_UNSPECIFIED: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_PROPOSED: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_FUNDING: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_OPEN: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_CLOSING: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_FINALIZED: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_DEFUNDED: _ClassVar[ChannelStatus]
    CHANNEL_STATUS_CHALLENGED: _ClassVar[ChannelStatus]

class ColumnType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLUMN_TYPE_UNSPECIFIED: _ClassVar[ColumnType]
    COLUMN_TYPE_INTEGER: _ClassVar[ColumnType]
    COLUMN_TYPE_TEXT: _ClassVar[ColumnType]
    COLUMN_TYPE_BLOB: _ClassVar[ColumnType]
    COLUMN_TYPE_UINT256: _ClassVar[ColumnType]
    COLUMN_TYPE_BOOL: _ClassVar[ColumnType]
    COLUMN_TYPE_HEX: _ClassVar[ColumnType]
QUERY_STATUS_OK: QueryStatus
QUERY_STATUS_NOT_FOUND: QueryStatus
QUERY_STATUS_BAD_QUERY: QueryStatus
CHANNEL_STATUS_UNSPECIFIED: ChannelStatus
CHANNEL_STATUS_PROPOSED: ChannelStatus
CHANNEL_STATUS_FUNDING: ChannelStatus
CHANNEL_STATUS_OPEN: ChannelStatus
CHANNEL_STATUS_CLOSING: ChannelStatus
CHANNEL_STATUS_FINALIZED: ChannelStatus
CHANNEL_STATUS_DEFUNDED: ChannelStatus
CHANNEL_STATUS_CHALLENGED: ChannelStatus
COLUMN_TYPE_UNSPECIFIED: ColumnType
COLUMN_TYPE_INTEGER: ColumnType
COLUMN_TYPE_TEXT: ColumnType
COLUMN_TYPE_BLOB: ColumnType
COLUMN_TYPE_UINT256: ColumnType
COLUMN_TYPE_BOOL: ColumnType
COLUMN_TYPE_HEX: ColumnType

class Query(_message.Message):
    __slots__ = ("get_channel", "list_channels", "get_totals", "get_cursor", "list_counterparties")
    GET_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LIST_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    GET_TOTALS_FIELD_NUMBER: _ClassVar[int]
    GET_CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIST_COUNTERPARTIES_FIELD_NUMBER: _ClassVar[int]
    get_channel: GetChannel
    list_channels: ListChannels
    get_totals: GetTotals
    get_cursor: GetCursor
    list_counterparties: ListCounterparties
    def __init__(self, get_channel: _Optional[_Union[GetChannel, _Mapping]] = ..., list_channels: _Optional[_Union[ListChannels, _Mapping]] = ..., get_totals: _Optional[_Union[GetTotals, _Mapping]] = ..., get_cursor: _Optional[_Union[GetCursor, _Mapping]] = ..., list_counterparties: _Optional[_Union[ListCounterparties, _Mapping]] = ...) -> None: ...

class GetChannel(_message.Message):
    __slots__ = ("channel_id",)
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    def __init__(self, channel_id: _Optional[bytes] = ...) -> None: ...

class ListChannels(_message.Message):
    __slots__ = ("after", "limit")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after: bytes
    limit: int
    def __init__(self, after: _Optional[bytes] = ..., limit: _Optional[int] = ...) -> None: ...

class GetTotals(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCursor(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCounterparties(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("status", "detail", "channel", "channels", "totals", "cursor", "counterparties")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    COUNTERPARTIES_FIELD_NUMBER: _ClassVar[int]
    status: QueryStatus
    detail: str
    channel: ChannelView
    channels: ChannelList
    totals: Totals
    cursor: Cursor
    counterparties: CounterpartyList
    def __init__(self, status: _Optional[_Union[QueryStatus, str]] = ..., detail: _Optional[str] = ..., channel: _Optional[_Union[ChannelView, _Mapping]] = ..., channels: _Optional[_Union[ChannelList, _Mapping]] = ..., totals: _Optional[_Union[Totals, _Mapping]] = ..., cursor: _Optional[_Union[Cursor, _Mapping]] = ..., counterparties: _Optional[_Union[CounterpartyList, _Mapping]] = ...) -> None: ...

class AssetHolding(_message.Message):
    __slots__ = ("asset", "amount")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    asset: bytes
    amount: bytes
    def __init__(self, asset: _Optional[bytes] = ..., amount: _Optional[bytes] = ...) -> None: ...

class ChannelView(_message.Message):
    __slots__ = ("channel_id", "fixed", "status", "latest_signed", "supported", "holdings", "guarantees", "voucher_amount", "paid", "finalizes_at", "last_seq", "received", "vouchers", "challenge", "concluded", "reclaims")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATEST_SIGNED_FIELD_NUMBER: _ClassVar[int]
    SUPPORTED_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    GUARANTEES_FIELD_NUMBER: _ClassVar[int]
    VOUCHER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    FINALIZES_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    CONCLUDED_FIELD_NUMBER: _ClassVar[int]
    RECLAIMS_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    fixed: _nitro_pb2.FixedPart
    status: ChannelStatus
    latest_signed: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.SignedState]
    supported: _nitro_pb2.SignedState
    holdings: _containers.RepeatedCompositeFieldContainer[AssetHolding]
    guarantees: _containers.RepeatedCompositeFieldContainer[_nitro_pb2.Guarantee]
    voucher_amount: bytes
    paid: bytes
    finalizes_at: int
    last_seq: int
    received: bytes
    vouchers: int
    challenge: _nitro_pb2.SignedState
    concluded: bool
    reclaims: int
    def __init__(self, channel_id: _Optional[bytes] = ..., fixed: _Optional[_Union[_nitro_pb2.FixedPart, _Mapping]] = ..., status: _Optional[_Union[ChannelStatus, str]] = ..., latest_signed: _Optional[_Iterable[_Union[_nitro_pb2.SignedState, _Mapping]]] = ..., supported: _Optional[_Union[_nitro_pb2.SignedState, _Mapping]] = ..., holdings: _Optional[_Iterable[_Union[AssetHolding, _Mapping]]] = ..., guarantees: _Optional[_Iterable[_Union[_nitro_pb2.Guarantee, _Mapping]]] = ..., voucher_amount: _Optional[bytes] = ..., paid: _Optional[bytes] = ..., finalizes_at: _Optional[int] = ..., last_seq: _Optional[int] = ..., received: _Optional[bytes] = ..., vouchers: _Optional[int] = ..., challenge: _Optional[_Union[_nitro_pb2.SignedState, _Mapping]] = ..., concluded: _Optional[bool] = ..., reclaims: _Optional[int] = ...) -> None: ...

class ChannelList(_message.Message):
    __slots__ = ("channels", "next_after")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[ChannelView]
    next_after: bytes
    def __init__(self, channels: _Optional[_Iterable[_Union[ChannelView, _Mapping]]] = ..., next_after: _Optional[bytes] = ...) -> None: ...

class Totals(_message.Message):
    __slots__ = ("records", "channels", "open_channels", "vouchers", "holdings", "last_seq")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    OPEN_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    records: int
    channels: int
    open_channels: int
    vouchers: int
    holdings: _containers.RepeatedCompositeFieldContainer[AssetHolding]
    last_seq: int
    def __init__(self, records: _Optional[int] = ..., channels: _Optional[int] = ..., open_channels: _Optional[int] = ..., vouchers: _Optional[int] = ..., holdings: _Optional[_Iterable[_Union[AssetHolding, _Mapping]]] = ..., last_seq: _Optional[int] = ...) -> None: ...

class Cursor(_message.Message):
    __slots__ = ("last_seq",)
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    last_seq: int
    def __init__(self, last_seq: _Optional[int] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("seq", "channel_id", "amount", "sent")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    channel_id: bytes
    amount: bytes
    sent: bool
    def __init__(self, seq: _Optional[int] = ..., channel_id: _Optional[bytes] = ..., amount: _Optional[bytes] = ..., sent: _Optional[bool] = ...) -> None: ...

class CounterpartyPayments(_message.Message):
    __slots__ = ("address", "sent", "received", "payments", "recent")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    address: bytes
    sent: bytes
    received: bytes
    payments: int
    recent: _containers.RepeatedCompositeFieldContainer[Payment]
    def __init__(self, address: _Optional[bytes] = ..., sent: _Optional[bytes] = ..., received: _Optional[bytes] = ..., payments: _Optional[int] = ..., recent: _Optional[_Iterable[_Union[Payment, _Mapping]]] = ...) -> None: ...

class CounterpartyList(_message.Message):
    __slots__ = ("counterparties",)
    COUNTERPARTIES_FIELD_NUMBER: _ClassVar[int]
    counterparties: _containers.RepeatedCompositeFieldContainer[CounterpartyPayments]
    def __init__(self, counterparties: _Optional[_Iterable[_Union[CounterpartyPayments, _Mapping]]] = ...) -> None: ...

class TableSchema(_message.Message):
    __slots__ = ("tables",)
    TABLES_FIELD_NUMBER: _ClassVar[int]
    tables: _containers.RepeatedCompositeFieldContainer[Table]
    def __init__(self, tables: _Optional[_Iterable[_Union[Table, _Mapping]]] = ...) -> None: ...

class Table(_message.Message):
    __slots__ = ("name", "columns", "primary_key", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_KEY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    primary_key: _containers.RepeatedScalarFieldContainer[int]
    description: str
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., primary_key: _Optional[_Iterable[int]] = ..., description: _Optional[str] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "type", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ColumnType
    description: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ColumnType, str]] = ..., description: _Optional[str] = ...) -> None: ...

class RowChanges(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[RowChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[RowChange, _Mapping]]] = ...) -> None: ...

class RowChange(_message.Message):
    __slots__ = ("table", "delete", "integers", "texts", "blobs", "nulls")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    INTEGERS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    NULLS_FIELD_NUMBER: _ClassVar[int]
    table: int
    delete: bool
    integers: _containers.RepeatedScalarFieldContainer[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    blobs: _containers.RepeatedScalarFieldContainer[bytes]
    nulls: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, table: _Optional[int] = ..., delete: _Optional[bool] = ..., integers: _Optional[_Iterable[int]] = ..., texts: _Optional[_Iterable[str]] = ..., blobs: _Optional[_Iterable[bytes]] = ..., nulls: _Optional[_Iterable[int]] = ...) -> None: ...
