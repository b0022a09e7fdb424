"""A pure-Python fold with exactly the reference module's rules: the test oracle.

wasm/src/channels.zig and this file implement the same rules (docs/derive-abi.md,
"The reference module"); the property tests check that they agree record by
record. It is slow and unbounded in memory: never use it on the hot path.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

from node.core.constants import allocation_type_guarantee
from node.derive._errors import RecordRejectedError
from node.derive._reference_tables import Rows, channel_table_rows
from node.proto import derive_pb2, log_pb2, nitro_pb2

PARTICIPANTS_MAX: Final = 16
CHANNEL_STATES_MAX: Final = 32
LIST_LIMIT_DEFAULT: Final = 256
LIST_LIMIT_MAX: Final = 1024
TURN_NUM_MAX: Final = 2**48 - 1
UINT256_MAX: Final = 2**256 - 1
# Chain events the undo journal keeps (channels.zig `chain_undo_entries_max`).
CHAIN_UNDO_ENTRIES_MAX: Final = 1024

CODE_MALFORMED: Final = 2
CODE_INVALID: Final = 3
CODE_SEQUENCE: Final = 4
CODE_FIXED_MISMATCH: Final = 5
CODE_REVERT_TOO_DEEP: Final = 8

_HOLDING_EVENTS: Final = ("deposited", "allocation_updated")
_CHALLENGE_EVENTS: Final = ("challenge_registered", "challenge_cleared")

Status = derive_pb2


@dataclass
class _Entry:
    hash: bytes
    turn: int
    is_final: bool
    state: nitro_pb2.State
    signatures: dict[int, bytes]


@dataclass
class _Channel:
    id: bytes
    fixed: nitro_pb2.FixedPart | None = None
    participants: int = 0
    states: list[_Entry] = field(default_factory=list)
    latest: list[int | None] = field(default_factory=list)
    supported: int | None = None
    holdings: dict[bytes, int] = field(default_factory=dict)
    voucher_amount: int = 0
    paid: int = 0
    received: int = 0
    vouchers: int = 0
    finalizes_at: int = 0
    challenged: bool = False
    concluded: bool = False
    challenge: nitro_pb2.SignedState | None = None
    reclaims: int = 0
    last_seq: int = 0


@dataclass
class _Undo:
    """How to undo one folded chain event: what it changed, as it was before.

    Only the facts its kind changes are meaningful: a holding for Deposited and
    AllocationUpdated, concluded and finalizes_at for Concluded, challenged,
    finalizes_at and the candidate for ChallengeRegistered and ChallengeCleared,
    reclaims for Reclaimed.
    """

    block: int
    chain_time_s: int
    kind: str | None  # the ChainEvent's event case
    channel_id: bytes | None = None  # None: the event names no channel
    created: bool = False  # the event created the channel
    asset: bytes = b""
    holding: int | None = None  # None: the channel held none of `asset`
    concluded: bool = False
    challenged: bool = False
    finalizes_at: int = 0
    challenge: nitro_pb2.SignedState | None = None
    reclaims: int = 0


def _reject(code: int, seq: int, message: str) -> RecordRejectedError:
    return RecordRejectedError("apply_batch", code, f"record {seq}: {message}")


def _amount(value: bytes, seq: int, what: str) -> int:
    if len(value) not in (0, 32):
        raise _reject(CODE_INVALID, seq, f"{what} must be 32 bytes, not {len(value)}")
    return int.from_bytes(value, "big")


def _exact(value: bytes, size: int, seq: int, what: str) -> bytes:
    if len(value) != size:
        raise _reject(CODE_INVALID, seq, f"{what} must be {size} bytes, not {len(value)}")
    return value


class ReferenceFold:
    """The reference module's state and rules, in Python."""

    def __init__(self) -> None:
        self.cursor = 0
        self.records = 0
        self.vouchers = 0
        self.chain_time_s = 0
        self.channels: dict[bytes, _Channel] = {}
        # Oldest first, blocks in order; a revert undoes from the newest end.
        self.journal: deque[_Undo] = deque()
        # A revert from a block below this one can no longer be undone exactly.
        self.undo_floor_block = 0

    # ------------------------------------------------------------ records

    def apply_bytes(self, raw: bytes) -> None:
        """Fold one serialised LogRecord."""
        record = log_pb2.LogRecord()
        try:
            record.ParseFromString(raw)
        except Exception:  # protobuf's DecodeError has no stable public base
            raise _reject(CODE_MALFORMED, self.cursor + 1, "record: malformed protobuf") from None
        self.apply(record)

    def apply(self, record: log_pb2.LogRecord) -> None:
        """Fold one record, or raise ``RecordRejectedError`` leaving the state as it was."""
        expected = self.cursor + 1
        if record.seq != expected:
            raise _reject(CODE_SEQUENCE, expected, f"seq is {record.seq}, expected {expected}")
        case = record.WhichOneof("payload")
        if case == "accepted_state":
            self._accepted(record.accepted_state, record.seq)
        elif case == "chain_event":
            self._chain_event(record.chain_event, record.seq)
        elif case == "accepted_voucher":
            self._voucher(record.accepted_voucher, record.seq)
        self.cursor = record.seq
        self.records += 1

    def _channel(self, channel_id: bytes) -> _Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            channel = self.channels[channel_id] = _Channel(id=channel_id)
        return channel

    def _validate_state(self, state: nitro_pb2.State, seq: int) -> None:
        for exit_ in state.outcome:
            for allocation in exit_.allocations:
                _amount(allocation.amount, seq, "allocation.amount")
                if allocation.allocation_type == allocation_type_guarantee and (
                    len(allocation.destination) != 32 or len(allocation.metadata) != 64
                ):
                    raise _reject(CODE_INVALID, seq, "guarantee allocation shape")
        if state.turn_num > TURN_NUM_MAX:
            raise _reject(CODE_INVALID, seq, "state.turn_num exceeds 2^48 - 1")
        if not state.HasField("fixed"):
            raise _reject(CODE_INVALID, seq, "state.fixed is missing")
        for participant in state.fixed.participants:
            _exact(participant, 20, seq, "state.fixed.participants[]")
        if len(state.fixed.participants) > PARTICIPANTS_MAX:
            raise _reject(CODE_INVALID, seq, "state.fixed has too many participants")
        if not state.fixed.participants:
            raise _reject(CODE_INVALID, seq, "state.fixed has no participants")

    def _signatures(self, signed: nitro_pb2.SignedState, seq: int) -> dict[int, bytes]:
        count = len(signed.state.fixed.participants)
        signatures: dict[int, bytes] = {}
        for signature in signed.signatures:
            _exact(signature.signature, 65, seq, "signatures[].signature")
            index = signature.participant_index
            if index >= count:
                raise _reject(CODE_INVALID, seq, f"participant_index {index} is not below {count}")
            if index in signatures:
                raise _reject(CODE_INVALID, seq, f"participant {index} signed twice")
            signatures[index] = signature.signature
        if not signatures:
            raise _reject(CODE_INVALID, seq, "signed_state has no signatures")
        return signatures

    def _accepted(self, accepted: log_pb2.AcceptedState, seq: int) -> None:
        channel_id = _exact(accepted.channel_id, 32, seq, "accepted_state.channel_id")
        state_hash = _exact(accepted.state_hash, 32, seq, "accepted_state.state_hash")
        if not accepted.HasField("signed_state") or not accepted.signed_state.HasField("state"):
            raise _reject(CODE_INVALID, seq, "signed_state.state is missing")
        state = accepted.signed_state.state
        self._validate_state(state, seq)
        signatures = self._signatures(accepted.signed_state, seq)
        existing = self.channels.get(channel_id)
        if existing is not None and existing.fixed is not None and existing.fixed != state.fixed:
            raise _reject(CODE_FIXED_MISMATCH, seq, "state.fixed differs from the channel's")
        channel = self._channel(channel_id)
        channel.last_seq = seq
        if channel.fixed is None:
            channel.fixed = nitro_pb2.FixedPart()
            channel.fixed.CopyFrom(state.fixed)
            channel.participants = len(state.fixed.participants)
            channel.latest = [None] * channel.participants
        index = next((i for i, e in enumerate(channel.states) if e.hash == state_hash), None)
        if index is None:
            if (
                channel.supported is not None
                and state.turn_num <= channel.states[channel.supported].turn
            ):
                return
            copy = nitro_pb2.State()
            copy.CopyFrom(state)
            channel.states.append(_Entry(state_hash, state.turn_num, state.is_final, copy, {}))
            index = len(channel.states) - 1
        entry = channel.states[index]
        for participant, signature in signatures.items():
            entry.signatures.setdefault(participant, signature)
        _reference_states(channel, index)
        _prune(channel)

    def _chain_event(self, event: log_pb2.ChainEvent, seq: int) -> None:
        case = event.WhichOneof("event")
        if case == "blocks_reverted":
            self._revert(event.blocks_reverted.first_block, seq)
            return
        undo = _Undo(block=event.block_number, chain_time_s=self.chain_time_s, kind=case)
        if case is None or case == "block_processed":
            self.chain_time_s = max(self.chain_time_s, event.block_time_s)
            self._journal_push(undo)
            return
        payload = getattr(event, case)
        channel_id = _exact(payload.channel_id, 32, seq, "chain_event.channel_id")
        asset, amount = b"", 0
        if case == "deposited":
            asset = _exact(payload.asset, 20, seq, "chain_event.asset")
            amount = _amount(payload.destination_holdings, seq, "chain_event.holdings")
        elif case == "allocation_updated":
            asset = _exact(payload.asset, 20, seq, "chain_event.asset")
            amount = _amount(payload.final_holdings, seq, "chain_event.holdings")
        self.chain_time_s = max(self.chain_time_s, event.block_time_s)
        undo.channel_id = channel_id
        undo.created = channel_id not in self.channels
        channel = self._channel(channel_id)
        channel.last_seq = seq
        undo.concluded, undo.challenged = channel.concluded, channel.challenged
        undo.finalizes_at, undo.reclaims = channel.finalizes_at, channel.reclaims
        undo.challenge = channel.challenge
        undo.asset, undo.holding = asset, channel.holdings.get(asset)
        _change(channel, event, asset, amount)
        self._journal_push(undo)

    def _journal_push(self, undo: _Undo) -> None:
        """Journal a folded chain event: whole blocks, in block order, at most the bound."""
        journal = self.journal
        if journal and undo.block < journal[-1].block:
            # Out of block order (a watcher never logs that): undoing the newer blocks
            # alone would no longer be exact, so they can no longer be reverted.
            self.undo_floor_block = journal[-1].block + 1
            journal.clear()
        if len(journal) == CHAIN_UNDO_ENTRIES_MAX:
            oldest = journal[0].block
            while journal and journal[0].block == oldest:
                journal.popleft()
            self.undo_floor_block = oldest + 1
        if undo.block >= self.undo_floor_block:
            journal.append(undo)

    def _revert(self, first_block: int, seq: int) -> None:
        """Undo every chain event folded from a block at or after ``first_block``."""
        if first_block < self.undo_floor_block:
            raise _reject(
                CODE_REVERT_TOO_DEEP,
                seq,
                f"blocks_reverted.first_block {first_block} is below block "
                f"{self.undo_floor_block}, the oldest the undo journal can revert",
            )
        while self.journal and self.journal[-1].block >= first_block:
            self._undo(self.journal.pop(), seq)

    def _undo(self, undo: _Undo, seq: int) -> None:
        self.chain_time_s = undo.chain_time_s
        if undo.channel_id is None:
            return
        channel = self.channels[undo.channel_id]
        if undo.kind in _HOLDING_EVENTS:
            if undo.holding is None:
                del channel.holdings[undo.asset]
            else:
                channel.holdings[undo.asset] = undo.holding
        elif undo.kind == "concluded":
            channel.concluded = undo.concluded
            channel.finalizes_at = undo.finalizes_at
        elif undo.kind in _CHALLENGE_EVENTS:
            channel.challenged = undo.challenged
            channel.finalizes_at = undo.finalizes_at
            channel.challenge = undo.challenge
        elif undo.kind == "reclaimed":
            channel.reclaims = undo.reclaims
        if undo.created and channel.fixed is None and channel.vouchers == 0:
            del self.channels[undo.channel_id]  # it existed only through reverted events
        else:
            channel.last_seq = seq

    def _voucher(self, accepted: log_pb2.AcceptedVoucher, seq: int) -> None:
        if not accepted.HasField("voucher"):
            raise _reject(CODE_INVALID, seq, "accepted_voucher.voucher is missing")
        channel_id = _exact(accepted.voucher.channel_id, 32, seq, "voucher.channel_id")
        amount = _amount(accepted.voucher.amount, seq, "voucher.amount")
        channel = self._channel(channel_id)
        channel.last_seq = seq
        channel.vouchers += 1
        self.vouchers += 1
        channel.voucher_amount = max(channel.voucher_amount, amount)
        if accepted.sent:
            channel.paid = max(channel.paid, amount)
        else:
            channel.received = max(channel.received, amount)

    # ------------------------------------------------------------ queries

    def query(self, request: derive_pb2.Query) -> derive_pb2.QueryResult:
        """Answer a query as the reference module does."""
        result = derive_pb2.QueryResult()
        case = request.WhichOneof("query")
        if case == "get_channel":
            channel_id = request.get_channel.channel_id
            if len(channel_id) != 32:
                return _bad_query("get_channel.channel_id must be 32 bytes")
            channel = self.channels.get(channel_id)
            if channel is None:
                result.status = derive_pb2.QUERY_STATUS_NOT_FOUND
                result.detail = "no such channel"
            else:
                result.channel.CopyFrom(self.view(channel_id))
        elif case == "list_channels":
            after = request.list_channels.after
            if len(after) not in (0, 32):
                return _bad_query("list_channels.after must be empty or 32 bytes")
            self._list(result, after, request.list_channels.limit)
        elif case == "get_totals":
            result.totals.CopyFrom(self.totals())
        elif case == "get_cursor":
            result.cursor.last_seq = self.cursor
        else:
            return _bad_query("query: no query this module answers")
        return result

    def _list(self, result: derive_pb2.QueryResult, after: bytes, limit: int) -> None:
        ids = sorted(self.channels)
        first = sum(1 for channel_id in ids if channel_id <= after) if after else 0
        count = LIST_LIMIT_DEFAULT if limit == 0 else min(limit, LIST_LIMIT_MAX)
        page = ids[first : first + count]
        listing = result.channels
        listing.SetInParent()
        for channel_id in page:
            listing.channels.add().CopyFrom(self.view(channel_id))
        if first + count < len(ids):
            listing.next_after = page[-1]

    def status(self, channel: _Channel) -> derive_pb2.ChannelStatus:
        """The channel's status by the documented rules."""
        supported = channel.states[channel.supported] if channel.supported is not None else None
        expired = channel.challenged and self.chain_time_s >= channel.finalizes_at
        if channel.concluded or expired or (supported is not None and supported.is_final):
            if channel.holdings and not any(channel.holdings.values()):
                return Status.CHANNEL_STATUS_DEFUNDED
            return Status.CHANNEL_STATUS_FINALIZED
        if channel.challenged:
            return Status.CHANNEL_STATUS_CHALLENGED
        if any(i is not None and channel.states[i].is_final for i in channel.latest):
            return Status.CHANNEL_STATUS_CLOSING
        if supported is not None:
            if supported.turn >= 1:
                return Status.CHANNEL_STATUS_OPEN
            return Status.CHANNEL_STATUS_FUNDING
        return Status.CHANNEL_STATUS_PROPOSED

    def view(self, channel_id: bytes) -> derive_pb2.ChannelView:
        """The ChannelView of a known channel."""
        channel = self.channels[channel_id]
        view = derive_pb2.ChannelView(channel_id=channel_id, status=self.status(channel))
        if channel.fixed is not None:
            view.fixed.CopyFrom(channel.fixed)
        for latest in channel.latest:
            signed = view.latest_signed.add()
            if latest is not None:
                _fill_signed(signed, channel.states[latest])
        if channel.supported is not None:
            supported = channel.states[channel.supported]
            _fill_signed(view.supported, supported)
            for exit_ in supported.state.outcome:
                for allocation in exit_.allocations:
                    if allocation.allocation_type == allocation_type_guarantee:
                        view.guarantees.add(
                            target=allocation.destination,
                            amount=_u256(int.from_bytes(allocation.amount, "big")),
                            left=allocation.metadata[:32],
                            right=allocation.metadata[32:],
                        )
        for asset in sorted(channel.holdings):
            view.holdings.add(asset=asset, amount=_u256(channel.holdings[asset]))
        view.voucher_amount = _u256(channel.voucher_amount)
        view.paid = _u256(channel.paid)
        view.received = _u256(channel.received)
        view.finalizes_at = channel.finalizes_at
        view.last_seq = channel.last_seq
        view.vouchers = channel.vouchers
        if channel.challenge is not None:
            view.challenge.CopyFrom(channel.challenge)
            view.challenge.SetInParent()  # present even when the candidate is empty
        view.concluded = channel.concluded
        view.reclaims = channel.reclaims
        return view

    def table_rows(self) -> Rows:
        """The rows of the reference module's tables (the tables extension)."""
        views = [self.view(channel_id) for channel_id in sorted(self.channels)]
        return channel_table_rows(views, self.totals(), self.chain_time_s)

    def totals(self) -> derive_pb2.Totals:
        """Node-wide totals."""
        sums: dict[bytes, int] = {}
        for channel in self.channels.values():
            for asset, amount in channel.holdings.items():
                sums[asset] = min(sums.get(asset, 0) + amount, UINT256_MAX)
        open_count = sum(
            1
            for channel in self.channels.values()
            if self.status(channel) == Status.CHANNEL_STATUS_OPEN
        )
        totals = derive_pb2.Totals(
            records=self.records,
            channels=len(self.channels),
            open_channels=open_count,
            vouchers=self.vouchers,
            last_seq=self.cursor,
        )
        for asset in sorted(sums):
            totals.holdings.add(asset=asset, amount=_u256(sums[asset]))
        return totals


def _reference_states(channel: _Channel, index: int) -> None:
    entry = channel.states[index]
    for participant in sorted(entry.signatures):
        latest = channel.latest[participant]
        if latest is None or channel.states[latest].turn < entry.turn:
            channel.latest[participant] = index
    if len(entry.signatures) == channel.participants and (
        channel.supported is None or channel.states[channel.supported].turn < entry.turn
    ):
        channel.supported = index


def _referenced(channel: _Channel, index: int) -> bool:
    return channel.supported == index or index in channel.latest


def _remove(channel: _Channel, index: int) -> None:
    assert not _referenced(channel, index)
    del channel.states[index]
    channel.latest = [i - 1 if i is not None and i > index else i for i in channel.latest]
    if channel.supported is not None and channel.supported > index:
        channel.supported -= 1


def _prune(channel: _Channel) -> None:
    if channel.supported is not None:
        supported_turn = channel.states[channel.supported].turn
        for index in reversed(range(len(channel.states))):
            entry = channel.states[index]
            if entry.turn <= supported_turn and not _referenced(channel, index):
                _remove(channel, index)
    while len(channel.states) > CHANNEL_STATES_MAX:
        victim: int | None = None
        for index, entry in enumerate(channel.states):
            if _referenced(channel, index):
                continue
            if victim is None or entry.turn < channel.states[victim].turn:
                victim = index
        assert victim is not None
        _remove(channel, victim)


def _change(channel: _Channel, event: log_pb2.ChainEvent, asset: bytes, amount: int) -> None:
    """What a chain event that names ``channel`` changes on it."""
    case = event.WhichOneof("event")
    if case in _HOLDING_EVENTS:
        channel.holdings[asset] = amount
    elif case == "concluded":
        channel.concluded = True
        channel.finalizes_at = event.concluded.finalizes_at
    elif case == "challenge_registered":
        channel.challenged = True
        channel.finalizes_at = event.challenge_registered.finalizes_at
        channel.challenge = _candidate(event.challenge_registered)
    elif case == "challenge_cleared":
        channel.challenged = False
        channel.challenge = None
        if not channel.concluded:
            channel.finalizes_at = 0
    elif case == "reclaimed":
        channel.reclaims += 1


def _candidate(registered: log_pb2.ChallengeRegistered) -> nitro_pb2.SignedState | None:
    """The challenge's candidate as the record carried it (the module re-emits its bytes)."""
    if not registered.HasField("candidate"):
        return None
    candidate = nitro_pb2.SignedState()
    candidate.CopyFrom(registered.candidate)
    return candidate


def _fill_signed(signed: nitro_pb2.SignedState, entry: _Entry) -> None:
    signed.state.CopyFrom(entry.state)
    for participant in sorted(entry.signatures):
        signed.signatures.add(
            participant_index=participant, signature=entry.signatures[participant]
        )


def _u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _bad_query(detail: str) -> derive_pb2.QueryResult:
    return derive_pb2.QueryResult(status=derive_pb2.QUERY_STATUS_BAD_QUERY, detail=detail)
