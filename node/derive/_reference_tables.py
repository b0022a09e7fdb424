"""The reference module's tables, computed in Python from its views: the oracle of the
tables extension (docs/derive-abi.md, "The reference module's tables").

``channel_table_rows`` turns what the reference module answers (ChannelViews and
Totals) into the rows its tables hold, values as SQL keeps them; the property
tests compare a view's SQLite tables with these rows, from the module's own
answers and from ``ReferenceFold``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from node.core.constants import allocation_type_guarantee
from node.proto import derive_pb2, nitro_pb2

Rows = dict[str, set[tuple[object, ...]]]
CHANNEL_TABLES: Final = ("channels", "participants", "holdings", "balances", "guarantees", "totals")
_STATUS_NAMES: Final = {
    derive_pb2.CHANNEL_STATUS_PROPOSED: "proposed",
    derive_pb2.CHANNEL_STATUS_FUNDING: "funding",
    derive_pb2.CHANNEL_STATUS_OPEN: "open",
    derive_pb2.CHANNEL_STATUS_CLOSING: "closing",
    derive_pb2.CHANNEL_STATUS_FINALIZED: "finalized",
    derive_pb2.CHANNEL_STATUS_DEFUNDED: "defunded",
    derive_pb2.CHANNEL_STATUS_CHALLENGED: "challenged",
}


def int64(value: int) -> int:
    """An unsigned 64-bit value as an INTEGER column keeps it (two's complement)."""
    return value - 2**64 if value >= 2**63 else value


def hex_value(value: bytes) -> str:
    return "0x" + value.hex()


def amount_value(value: bytes) -> str:
    return str(int.from_bytes(value, "big"))


def channel_table_rows(
    views: Iterable[derive_pb2.ChannelView], totals: derive_pb2.Totals, chain_time_s: int
) -> Rows:
    """The rows of the reference module's tables, from its answers (``chain_time_s``
    is not among them: the caller knows it some other way)."""
    rows: Rows = {name: set() for name in CHANNEL_TABLES}
    for view in views:
        rows["channels"].add(_channel_row(view))
        channel_id = hex_value(view.channel_id)
        for index, address in enumerate(view.fixed.participants):
            latest = view.latest_signed[index] if index < len(view.latest_signed) else None
            turn = (
                latest.state.turn_num if latest is not None and latest.HasField("state") else None
            )
            rows["participants"].add((channel_id, index, hex_value(address), turn))
        for holding in view.holdings:
            rows["holdings"].add(
                (channel_id, hex_value(holding.asset), amount_value(holding.amount))
            )
        if view.HasField("supported"):
            _outcome_rows(rows, channel_id, view.supported.state)
    rows["totals"].add(
        (
            1,
            int64(totals.records),
            int64(totals.last_seq),
            int64(totals.vouchers),
            int64(chain_time_s),
        )
    )
    return rows


def _channel_row(view: derive_pb2.ChannelView) -> tuple[object, ...]:
    fixed = view.fixed if view.HasField("fixed") else None
    supported = view.supported.state.turn_num if view.HasField("supported") else None
    challenge = view.challenge.state.turn_num if view.HasField("challenge") else None
    return (
        hex_value(view.channel_id),
        _STATUS_NAMES[view.status],
        len(fixed.participants) if fixed is not None else 0,
        str(fixed.channel_nonce) if fixed is not None else None,
        hex_value(fixed.app_definition) if fixed is not None else None,
        int64(fixed.challenge_duration) if fixed is not None else None,
        supported,
        amount_value(view.voucher_amount),
        amount_value(view.paid),
        amount_value(view.received),
        int64(view.vouchers),
        int64(view.finalizes_at),
        int64(challenge) if challenge is not None else None,
        int(view.concluded),
        int64(view.reclaims),
        int64(view.last_seq),
    )


def _outcome_rows(rows: Rows, channel_id: str, state: nitro_pb2.State) -> None:
    for asset_index, exit_ in enumerate(state.outcome):
        asset = hex_value(exit_.asset)
        for index, allocation in enumerate(exit_.allocations):
            amount = amount_value(allocation.amount)
            rows["balances"].add(
                (
                    channel_id,
                    asset_index,
                    index,
                    asset,
                    hex_value(allocation.destination),
                    amount,
                    allocation.allocation_type,
                )
            )
            if allocation.allocation_type == allocation_type_guarantee:
                rows["guarantees"].add(
                    (
                        channel_id,
                        asset_index,
                        index,
                        asset,
                        hex_value(allocation.destination),
                        amount,
                        hex_value(allocation.metadata[:32]),
                        hex_value(allocation.metadata[32:]),
                    )
                )
