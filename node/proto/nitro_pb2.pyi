from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Allocation(_message.Message):
    __slots__ = ("destination", "amount", "allocation_type", "metadata")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    destination: bytes
    amount: bytes
    allocation_type: int
    metadata: bytes
    def __init__(self, destination: _Optional[bytes] = ..., amount: _Optional[bytes] = ..., allocation_type: _Optional[int] = ..., metadata: _Optional[bytes] = ...) -> None: ...

class SingleAssetExit(_message.Message):
    __slots__ = ("asset", "asset_type", "asset_metadata", "allocations")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    ASSET_TYPE_FIELD_NUMBER: _ClassVar[int]
    ASSET_METADATA_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    asset: bytes
    asset_type: int
    asset_metadata: bytes
    allocations: _containers.RepeatedCompositeFieldContainer[Allocation]
    def __init__(self, asset: _Optional[bytes] = ..., asset_type: _Optional[int] = ..., asset_metadata: _Optional[bytes] = ..., allocations: _Optional[_Iterable[_Union[Allocation, _Mapping]]] = ...) -> None: ...

class FixedPart(_message.Message):
    __slots__ = ("participants", "channel_nonce", "app_definition", "challenge_duration")
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_NONCE_FIELD_NUMBER: _ClassVar[int]
    APP_DEFINITION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_DURATION_FIELD_NUMBER: _ClassVar[int]
    participants: _containers.RepeatedScalarFieldContainer[bytes]
    channel_nonce: int
    app_definition: bytes
    challenge_duration: int
    def __init__(self, participants: _Optional[_Iterable[bytes]] = ..., channel_nonce: _Optional[int] = ..., app_definition: _Optional[bytes] = ..., challenge_duration: _Optional[int] = ...) -> None: ...

class State(_message.Message):
    __slots__ = ("fixed", "app_data", "outcome", "turn_num", "is_final")
    FIXED_FIELD_NUMBER: _ClassVar[int]
    APP_DATA_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TURN_NUM_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    fixed: FixedPart
    app_data: bytes
    outcome: _containers.RepeatedCompositeFieldContainer[SingleAssetExit]
    turn_num: int
    is_final: bool
    def __init__(self, fixed: _Optional[_Union[FixedPart, _Mapping]] = ..., app_data: _Optional[bytes] = ..., outcome: _Optional[_Iterable[_Union[SingleAssetExit, _Mapping]]] = ..., turn_num: _Optional[int] = ..., is_final: _Optional[bool] = ...) -> None: ...

class VariablePart(_message.Message):
    __slots__ = ("outcome", "app_data", "turn_num", "is_final")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    APP_DATA_FIELD_NUMBER: _ClassVar[int]
    TURN_NUM_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    outcome: _containers.RepeatedCompositeFieldContainer[SingleAssetExit]
    app_data: bytes
    turn_num: int
    is_final: bool
    def __init__(self, outcome: _Optional[_Iterable[_Union[SingleAssetExit, _Mapping]]] = ..., app_data: _Optional[bytes] = ..., turn_num: _Optional[int] = ..., is_final: _Optional[bool] = ...) -> None: ...

class ParticipantSignature(_message.Message):
    __slots__ = ("participant_index", "signature")
    PARTICIPANT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    participant_index: int
    signature: bytes
    def __init__(self, participant_index: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SignedState(_message.Message):
    __slots__ = ("state", "signatures")
    STATE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    state: State
    signatures: _containers.RepeatedCompositeFieldContainer[ParticipantSignature]
    def __init__(self, state: _Optional[_Union[State, _Mapping]] = ..., signatures: _Optional[_Iterable[_Union[ParticipantSignature, _Mapping]]] = ...) -> None: ...

class Voucher(_message.Message):
    __slots__ = ("channel_id", "amount", "signature")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    channel_id: bytes
    amount: bytes
    signature: bytes
    def __init__(self, channel_id: _Optional[bytes] = ..., amount: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Guarantee(_message.Message):
    __slots__ = ("target", "amount", "left", "right")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FIELD_NUMBER: _ClassVar[int]
    target: bytes
    amount: bytes
    left: bytes
    right: bytes
    def __init__(self, target: _Optional[bytes] = ..., amount: _Optional[bytes] = ..., left: _Optional[bytes] = ..., right: _Optional[bytes] = ...) -> None: ...

class LedgerProposal(_message.Message):
    __slots__ = ("ledger_id", "turn_num", "add", "remove", "signature")
    LEDGER_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_NUM_FIELD_NUMBER: _ClassVar[int]
    ADD_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ledger_id: bytes
    turn_num: int
    add: AddGuarantee
    remove: RemoveGuarantee
    signature: bytes
    def __init__(self, ledger_id: _Optional[bytes] = ..., turn_num: _Optional[int] = ..., add: _Optional[_Union[AddGuarantee, _Mapping]] = ..., remove: _Optional[_Union[RemoveGuarantee, _Mapping]] = ..., signature: _Optional[bytes] = ...) -> None: ...

class AddGuarantee(_message.Message):
    __slots__ = ("guarantee", "left_deposit")
    GUARANTEE_FIELD_NUMBER: _ClassVar[int]
    LEFT_DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    guarantee: Guarantee
    left_deposit: bytes
    def __init__(self, guarantee: _Optional[_Union[Guarantee, _Mapping]] = ..., left_deposit: _Optional[bytes] = ...) -> None: ...

class RemoveGuarantee(_message.Message):
    __slots__ = ("target", "left_amount")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LEFT_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    target: bytes
    left_amount: bytes
    def __init__(self, target: _Optional[bytes] = ..., left_amount: _Optional[bytes] = ...) -> None: ...
