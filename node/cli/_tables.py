"""Channels and amounts for a person: rich tables of ledger and payment channels."""

from __future__ import annotations

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
                channel["status"],
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
            channel["status"],
            _short(channel["payer"]),
            _short(channel["payee"]),
            ", ".join(_short(hop) for hop in channel["intermediaries"]) or "direct",
            wei_text(channel["funds"]),
            wei_text(channel["paid"]),
            wei_text(channel["received"]),
        )
    return table


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address
