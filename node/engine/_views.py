"""Channel views from the derivation module, as objectives and API callers see them.

The module owns channel state (DESIGN.md, data flow rule 3): these functions
convert its ``ChannelView`` answers. ``ViewCache`` keeps the decoded views the
engine reads often within and between steps, and forgets a channel's as soon
as a record that may change it is built.
"""

from __future__ import annotations

from node.core import (
    address_from_bytes,
    address_to_destination,
    fixed_part_from_proto,
    signed_state_from_proto,
    uint256_from_bytes,
)
from node.core.errors import DeriveError, InvalidValueError
from node.derive import Deriver
from node.proto import derive_pb2, log_pb2
from node.protocols import ChannelSnapshot, PaymentChannel, payment_channel_from_snapshot

JsonObject = dict[str, object]
_VIEWS_KEPT_MAX = 4096  # decoded views kept between steps


def snapshot_from_view(view: derive_pb2.ChannelView) -> ChannelSnapshot:
    """The few fields an objective reads, decoded from the module's view.

    Raises:
        DeriveError: the module answered a view that does not decode.
    """
    try:
        fixed = fixed_part_from_proto(view.fixed, "view.fixed")
        latest = [
            signed_state_from_proto(entry, f"view.latest_signed[{index}]")
            if entry.HasField("state")
            else None
            for index, entry in enumerate(view.latest_signed)
        ]
        if not latest:
            latest = [None] * len(fixed.participants)
        supported = (
            signed_state_from_proto(view.supported, "view.supported")
            if view.HasField("supported")
            else None
        )
        holdings = [
            (address_from_bytes(holding.asset, "view.holdings.asset"), _amount(holding.amount))
            for holding in view.holdings
        ]
        challenge = (
            signed_state_from_proto(view.challenge, "view.challenge")
            if view.HasField("challenge")
            else None
        )
        return ChannelSnapshot(
            fixed,
            latest,
            supported,
            holdings,
            view.finalizes_at,
            challenge=challenge,
            concluded=view.concluded,
            reclaims=view.reclaims,
        )
    except InvalidValueError as error:
        raise DeriveError(f"channel view 0x{view.channel_id.hex()}: {error}") from error


def _amount(raw: bytes) -> int:
    return uint256_from_bytes(raw, "amount") if raw else 0


def status_name(status: int) -> str:
    """``OPEN`` for ``CHANNEL_STATUS_OPEN``: the short name people read."""
    return derive_pb2.ChannelStatus.Name(status).removeprefix("CHANNEL_STATUS_")


def payment_channel_info(view: derive_pb2.ChannelView, me: str) -> JsonObject:
    """A virtual (payment) channel as JSON: status, path, funds, what vouchers moved.

    Amounts are decimal strings. ``paid`` is the largest voucher we sent,
    ``received`` the largest we accepted.
    """
    snapshot = snapshot_from_view(view)
    participants = snapshot.fixed.participants
    shown = snapshot.supported or (
        snapshot.latest_signed_by(participants.index(me)) if me in participants else None
    )
    funds = (
        sum(a.amount for a in shown.state.outcome[0].allocations)
        if shown is not None and shown.state.outcome
        else 0
    )
    return {
        "id": "0x" + view.channel_id.hex(),
        "status": status_name(view.status),
        "payer": participants[0],
        "payee": participants[-1],
        "intermediaries": list(participants[1:-1]),
        "turn_num": shown.state.turn_num if shown is not None else None,
        "funds": str(funds),
        "paid": str(_amount(view.paid)),
        "received": str(_amount(view.received)),
        "vouchers": view.vouchers,
        "finalizes_at": snapshot.finalizes_at,
        "dispute": dispute_info(snapshot),
        "last_seq": view.last_seq,
    }


def ledger_channel_info(view: derive_pb2.ChannelView, me: str) -> JsonObject:
    """A ledger channel as JSON for the API: status, parties, balances, holdings.

    Amounts are decimal strings: uint256 values do not survive JSON numbers.
    Balances come from the supported state, or else from my latest signed state
    (a channel still being proposed).
    """
    snapshot = snapshot_from_view(view)
    participants = snapshot.fixed.participants
    others = [address for address in participants if address != me]
    shown = snapshot.supported or (
        snapshot.latest_signed_by(participants.index(me)) if me in participants else None
    )
    balances: list[object] = []
    if shown is not None:
        mine = address_to_destination(me) if me in participants else b""
        for asset_exit in shown.state.outcome:
            my_amount = sum(a.amount for a in asset_exit.allocations if a.destination == mine)
            total = sum(a.amount for a in asset_exit.allocations)
            balances.append(
                {
                    "asset": asset_exit.asset,
                    "me": str(my_amount),
                    "them": str(total - my_amount),
                }
            )
    return {
        "id": "0x" + view.channel_id.hex(),
        "status": status_name(view.status),
        "participants": list(participants),
        "counterparty": others[0] if len(others) == 1 else None,
        "channel_nonce": str(snapshot.fixed.channel_nonce),
        "challenge_duration": snapshot.fixed.challenge_duration,
        "turn_num": shown.state.turn_num if shown is not None else None,
        "supported_turn_num": (
            snapshot.supported.state.turn_num if snapshot.supported is not None else None
        ),
        "balances": balances,
        "holdings": [
            {"asset": asset, "amount": str(amount)} for asset, amount in snapshot.holdings
        ],
        "finalizes_at": snapshot.finalizes_at,
        "dispute": dispute_info(snapshot),
        "last_seq": view.last_seq,
    }


def dispute_info(snapshot: ChannelSnapshot) -> JsonObject | None:
    """What is on chain against a channel (None: nothing): the turn of the challenge
    registered, whether a later state supersedes it (a stale challenge, to be answered),
    when it finalizes, and whether the channel was concluded.
    """
    if snapshot.finalizes_at == 0 and snapshot.challenge is None and not snapshot.concluded:
        return None
    challenged = snapshot.challenge.state.turn_num if snapshot.challenge is not None else None
    supported = snapshot.supported.state.turn_num if snapshot.supported is not None else None
    return {
        "challenge_turn_num": challenged,
        "stale": challenged is not None and supported is not None and supported > challenged,
        "finalizes_at": snapshot.finalizes_at,
        "concluded": snapshot.concluded,
    }


def record_channel(record: log_pb2.LogRecord) -> bytes | None:
    """The channel whose derived view a record may change (None: none)."""
    case = record.WhichOneof("payload")
    if case == "accepted_state":
        return record.accepted_state.channel_id
    if case == "chain_event":
        event = record.chain_event
        which = event.WhichOneof("event")
        if which is None or which in ("block_processed", "blocks_reverted"):
            return None  # a revert may change any channel: see ViewCache.saw
        channel: bytes = getattr(event, which).channel_id
        return channel
    if case == "accepted_voucher":
        return record.accepted_voucher.voucher.channel_id
    return None


class ViewCache:
    """Decoded channel views, kept until a record that may change them is built.

    A record built in a step reaches the module only when the step folds it:
    until then its channel's view is read afresh and not kept (``pending``).
    """

    def __init__(self, deriver: Deriver, payment_app: str) -> None:
        self._deriver = deriver
        self._payment_app = bytes.fromhex(payment_app[2:]) if payment_app else b""
        self._snapshots: dict[bytes, ChannelSnapshot | None] = {}
        self._payments: dict[bytes, PaymentChannel | None] = {}
        self._pending: set[bytes] = set()
        self._everything_pending = False

    def snapshot(self, channel: bytes) -> ChannelSnapshot | None:
        """What the module says of ``channel`` (None: it knows no such channel)."""
        if channel in self._snapshots:
            return self._snapshots[channel]
        view = self._deriver.channel(channel)
        snapshot = snapshot_from_view(view) if view is not None else None
        if channel not in self._pending and not self._everything_pending:
            if len(self._snapshots) >= _VIEWS_KEPT_MAX:
                self._snapshots.clear()  # a bound, not an eviction policy: views are cheap
            self._snapshots[channel] = snapshot
        return snapshot

    def payment(self, channel: bytes) -> PaymentChannel | None:
        """The payment facts of a virtual channel (None: no such virtual channel)."""
        if channel in self._payments:
            return self._payments[channel]
        snapshot = self.snapshot(channel)
        facts = None
        if snapshot is not None and self.is_virtual(snapshot):
            facts = payment_channel_from_snapshot(snapshot)
        if channel not in self._pending and not self._everything_pending:
            if len(self._payments) >= _VIEWS_KEPT_MAX:
                self._payments.clear()
            self._payments[channel] = facts
        return facts

    def is_virtual(self, snapshot: ChannelSnapshot) -> bool:
        """Whether a channel runs the VirtualPaymentApp."""
        app = bytes.fromhex(snapshot.fixed.app_definition[2:])
        return bool(self._payment_app) and app == self._payment_app

    def saw(self, record: log_pb2.LogRecord) -> None:
        """A record was built: its channel's view is stale until the module folds it."""
        if record.WhichOneof("payload") == "chain_event" and record.chain_event.HasField(
            "blocks_reverted"
        ):
            self.clear()  # any channel may change: nothing is kept until folded
            self._everything_pending = True
            return
        channel = record_channel(record)
        if channel is not None and record.WhichOneof("payload") != "accepted_voucher":
            self._pending.add(channel)
            self._snapshots.pop(channel, None)
            self._payments.pop(channel, None)

    def folded(self) -> None:
        """The module folded every record built so far."""
        for channel in self._pending:
            self._snapshots.pop(channel, None)
            self._payments.pop(channel, None)
        self._pending.clear()
        self._everything_pending = False

    def clear(self) -> None:
        """Forget everything (the module was rolled back)."""
        self._snapshots.clear()
        self._payments.clear()
        self._pending.clear()
        self._everything_pending = False
