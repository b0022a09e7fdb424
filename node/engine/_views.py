"""Channel views from the derivation module, as objectives and API callers see them.

The module owns channel state (DESIGN.md, data flow rule 3): these functions
only convert one of its ``ChannelView`` answers, never keep a copy.
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
from node.proto import derive_pb2
from node.protocols import ChannelSnapshot

JsonObject = dict[str, object]


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
        return ChannelSnapshot(fixed, latest, supported, holdings, view.finalizes_at)
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
        "last_seq": view.last_seq,
    }
