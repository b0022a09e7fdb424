"""Channels and amounts for a person: rich tables of ledger and payment channels."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

# node.cli exports this module, and every scnode command, even --help, imports node.cli:
# rich is imported where a table is drawn, not here.


def wei_text(amount: str) -> str:
    """A decimal amount of wei for a person: in ETH from 0.001 ETH up."""
    if not amount.isdigit():
        return amount
    value = int(amount)
    return f"{Decimal(value) / 10**18:f} ETH" if value >= 10**15 else f"{value} wei"


def channels_table(channels: list[Any]) -> Table:
    """Ledger channels as a rich table."""
    from rich.table import Table

    table = Table(title="ledger channels")
    for column in ("channel", "status", "counterparty", "turn", "asset", "me", "them", "held"):
        table.add_column(column, overflow="fold")
    for channel in channels:
        held = {holding["asset"]: holding["amount"] for holding in channel["holdings"]}
        rows = channel["balances"] or [{"asset": "-", "me": "-", "them": "-"}]
        for balance in rows:
            table.add_row(
                channel["id"][:18] + "...",
                status_text(channel),
                channel["counterparty"] or "-",
                str(channel["turn_num"]),
                _asset_name(balance["asset"]),
                wei_text(balance["me"]),
                wei_text(balance["them"]),
                wei_text(held.get(balance["asset"], "0")),
            )
    return table


def _asset_name(asset: str) -> str:
    return "ETH" if asset == "0x" + "0" * 40 else asset


def payments_table(channels: list[Any]) -> Table:
    """Payment channels as a rich table."""
    from rich.table import Table

    table = Table(title="payment channels")
    for column in ("channel", "status", "payer", "payee", "via", "funds", "paid", "received"):
        table.add_column(column, overflow="fold")
    for channel in channels:
        table.add_row(
            channel["id"][:18] + "...",
            status_text(channel),
            _short(channel["payer"]),
            _short(channel["payee"]),
            ", ".join(_short(hop) for hop in channel["intermediaries"]) or "direct",
            wei_text(channel["funds"]),
            wei_text(channel["paid"]),
            wei_text(channel["received"]),
        )
    return table


def status_text(channel: dict[str, Any]) -> str:
    """The status, and the dispute on chain if any: the turn challenged, ``stale`` when
    a later state answers it, and when it finalizes (UTC)."""
    dispute = channel.get("dispute")
    if not dispute:
        return str(channel["status"])
    parts = [str(channel["status"])]
    if dispute["challenge_turn_num"] is not None:
        stale = " stale" if dispute["stale"] else ""
        parts.append(f"turn {dispute['challenge_turn_num']}{stale}")
    if dispute["concluded"]:
        parts.append("concluded")
    if dispute["finalizes_at"]:
        when = datetime.fromtimestamp(int(dispute["finalizes_at"]), UTC)
        parts.append(f"until {when:%Y-%m-%d %H:%M:%S}")
    return " ".join(parts)


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address
